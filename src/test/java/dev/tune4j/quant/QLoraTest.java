package dev.tune4j.quant;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.ConfigPresets;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.*;

/** The tensor-side dequantization equals the reference one; QLoRA trains, stays 4-bit, and its adapter works on the dense base. */
class QLoraTest {
    @TempDir
    Path tmp;

    @Test
    void tensorDequantizationEqualsTheReference() {
        var rnd = new Random(5);
        for (int n : new int[]{64 * 10, 100, 4097}) {
            float[] x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian();
            for (boolean dq : new boolean[]{false, true})
                for (String type : new String[]{"nf4", "fp4"}) {
                    var s = Quantizer.quantize(x, new long[]{n}, type, 64, dq);
                    float[] want = Quantizer.dequantize(s);
                    try (var w = new QuantizedWeight(s, Compute.cpu()); PointerScope scope = new PointerScope()) {
                        assertThat(Tensors.toFloats(w.dequantize())).as(type + " dq=" + dq + " n=" + n).containsExactly(want);
                        assertThat(w.bytes()).isEqualTo(s.bytes());
                    }
                }
        }
    }

    @Test
    void quantizedModelIsCloseToTheDenseOneAndRefusesMerges() {
        try (LlamaModel dense = LlamaModel.random(ConfigPresets.tiny(), 9, Compute.cpu()); LlamaModel q = LlamaModel.random(ConfigPresets.tiny(), 9, Compute.cpu());
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            var sizes = FourBit.quantize(q, "nf4", 64, true);
            assertThat(sizes.tensors()).isEqualTo(4 * 7);
            assertThat(sizes.ratio()).isLessThanOrEqualTo(0.14);
            assertThat(q.linears().values()).allMatch(l -> l.weight == null && l.quantized != null);
            var ids = Tensors.longs(new long[]{1, 40, 41, 42, 43, 44}, 1, 6);
            float[] a = Tensors.toFloats(dense.logits(ids, null, null)), b = Tensors.toFloats(q.logits(ids, null, null));
            double num = 0, den = 0;
            for (int i = 0; i < a.length; i++) {
                num += (a[i] - b[i]) * (a[i] - b[i]);
                den += a[i] * a[i];
            }
            assertThat(Math.sqrt(num / den)).as("relative logit error of the 4-bit model").isLessThan(0.2);
            try (LoraAdapter lora = LoraAdapter.create(q, new LoraConfig(4, 8, 0, List.of("q_proj"), false), 1, "x")) {
                assertThatThrownBy(lora::merge).hasMessageContaining("4-bit");
            }
            assertThatThrownBy(() -> q.save(tmp.resolve("no"), dev.tune4j.hf.DType.F32, Long.MAX_VALUE)).hasMessageContaining("quantized");
        }
    }

    @Test
    void qloraTrainsAndItsAdapterLoadsOnTheDenseBase() throws Exception {
        Path model = EmbeddedModel.stories260k();
        Path data = tmp.resolve("d.json");
        var sb = new StringBuilder("[");
        for (int i = 0; i < 48; i++) sb.append(i == 0 ? "" : ",").append("{\"instruction\": \"Say the colour.\", \"output\": \"The colour is blue.\"}");
        Files.writeString(data, sb.append("]").toString());
        Path out = tmp.resolve("run");
        CliRun r = CliRun.of("train", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(), "--method", "qlora",
                "--epochs", "3", "--batch-size", "8", "--lr", "3e-3", "--r", "8", "--max-seq-len", "48");
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("qlora: 35 projections in nf4 + double quantization");
        assertThat(new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.resolve("run_config.json").toFile()).get("gradient-checkpointing").asBoolean()).isTrue();
        var m = java.util.regex.Pattern.compile("validation before training: loss ([0-9.]+)").matcher(r.out());
        assertThat(m.find()).isTrue();
        double before = Double.parseDouble(m.group(1));
        var best = java.util.regex.Pattern.compile("best val loss ([0-9.]+)").matcher(r.out());
        assertThat(best.find()).isTrue();
        assertThat(Double.parseDouble(best.group(1))).isLessThan(before / 2);
        try (ModelFolder f = ModelFolder.open(model); LlamaModel dense = LlamaModel.load(f, Compute.cpu());
             LoraAdapter a = LoraAdapter.load(out.resolve("adapter"), dense)) {
            assertThat(a.modules()).hasSize(35);
        }
        CliRun bf16 = CliRun.of("train", "--model", model.toString(), "--data", data.toString(), "--out", tmp.resolve("bf16").toString(), "--method", "qlora",
                "--compute-dtype", "bfloat16", "--max-steps", "3", "--batch-size", "8", "--r", "8", "--max-seq-len", "48", "--optim", "adamw8bit");
        assertThat(bf16.code()).as(bf16.err() + bf16.out()).isZero();
        assertThat(Files.readString(tmp.resolve("bf16/run_config.json"))).contains("\"compute-dtype\" : \"bfloat16\"");
        CliRun badDtype = CliRun.of("train", "--model", model.toString(), "--data", data.toString(), "--out", tmp.resolve("c").toString(), "--compute-dtype", "int8");
        assertThat(badDtype.code()).isEqualTo(2);
        assertThat(badDtype.err()).contains("compute-dtype");
        CliRun bad = CliRun.of("train", "--model", model.toString(), "--data", data.toString(), "--out", tmp.resolve("b").toString(), "--method", "qlora", "--blocksize", "48");
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("power of two");
    }
}
