package dev.tune4j.quant;

import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import dev.tune4j.hf.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import dev.tune4j.quant.FourBit;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.*;

/** bitsandbytes' 4-bit checkpoint layout: written, read back bit for bit, loaded without re-quantizing, bad entries named. */
class BnbFormatTest {
    @TempDir
    Path tmp;

    @Test
    void quantizeSaveLoadRoundTripIsBitIdentical() throws Exception {
        Path base = Golden.golden("models/qwen2-untied"), out = tmp.resolve("q");
        CliRun r = CliRun.of("quantize", "--model", base.toString(), "--out", out.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(Files.readString(out.resolve("config.json"))).contains("\"quant_method\" : \"bitsandbytes\"").contains("\"bnb_4bit_quant_type\" : \"nf4\"");
        try (ModelFolder src = ModelFolder.open(base); ModelFolder q = ModelFolder.open(out)) {
            assertThat(q.bitsandbytes4bit()).isTrue();
            q.validate();
            String name = "model.layers.1.mlp.down_proj.weight";
            var want = Quantizer.quantize(src.floats(name), src.info(name).shape(), "nf4", 64, true);
            var got = BnbFormat.read(q.fileOf(name), name);
            assertThat(got.packed()).containsExactly(want.packed());
            assertThat(got.nestedCodes()).containsExactly(want.nestedCodes());
            assertThat(got.nestedAbsmax()).containsExactly(want.nestedAbsmax());
            assertThat(got.offset()).isEqualTo(want.offset());
            assertThat(got.shape()).containsExactly(64, 128);
            byte[] json = q.fileOf(name).bytes(name + ".quant_state.bitsandbytes__nf4").toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            assertThat(new String(json, StandardCharsets.UTF_8)).startsWith("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [64, 128], "
                    + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ");
            assertThat(q.info(name + ".quant_map").numel()).isEqualTo(16);
            assertThat(q.info(name + ".nested_quant_map").numel()).isEqualTo(256);
            assertThat(q.info("model.embed_tokens.weight").dtype()).isEqualTo(DType.F32);
            // loading the stored codes equals quantizing the dense model on the fly, logit for logit
            try (LlamaModel fromDisk = FourBit.load(q, Compute.cpu()); LlamaModel onTheFly = LlamaModel.load(src, Compute.cpu());
                 PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                FourBit.quantize(onTheFly, "nf4", 64, true);
                var ids = Tensors.longs(new long[]{3, 17, 99, 4, 250}, 1, 5);
                assertThat(Tensors.toFloats(fromDisk.logits(ids, null, null))).containsExactly(Tensors.toFloats(onTheFly.logits(ids, null, null)));
            }
        }
        CliRun merge = CliRun.of("merge", "--model", out.toString(), "--adapter", Golden.golden("lora/qwen2-untied/adapter").toString(), "--out", tmp.resolve("m").toString());
        assertThat(merge.code()).isEqualTo(2);
        assertThat(merge.err()).contains("quantized");
    }

    @Test
    void plainAbsmaxVariantRoundTrips() throws Exception {
        Path out = tmp.resolve("fp4");
        QuantizeFolder.run(Golden.golden("models/llama-tied"), out, "fp4", 128, false, Long.MAX_VALUE);
        try (ModelFolder src = ModelFolder.open(Golden.golden("models/llama-tied")); ModelFolder q = ModelFolder.open(out)) {
            String name = "model.layers.0.self_attn.q_proj.weight";
            var got = BnbFormat.read(q.fileOf(name), name);
            assertThat(got.nested()).isFalse();
            assertThat(Quantizer.dequantize(got)).containsExactly(Quantizer.dequantize(Quantizer.quantize(src.floats(name), new long[]{64, 64}, "fp4", 128, false)));
        }
    }

    @Test
    void corruptQuantStateIsNamed() throws Exception {
        var s = Quantizer.quantize(new float[64 * 64], new long[]{64, 64}, "nf4", 64, true);
        var blobs = new LinkedHashMap<>(BnbFormat.blobs("w.weight", s));
        blobs.put("w.weight.quant_state.bitsandbytes__nf4", new TensorBlob(DType.U8, new long[]{5}, "{bad!".getBytes(StandardCharsets.UTF_8)));
        Path f = tmp.resolve("bad.safetensors");
        SafetensorsWriter.write(f, blobs, Map.of());
        try (Safetensors st = Safetensors.open(f)) {
            assertThatThrownBy(() -> BnbFormat.read(st, "w.weight")).isInstanceOf(HfFormatException.class).hasMessageContaining("quant_state is not valid JSON");
        }
        blobs.put("w.weight.quant_state.bitsandbytes__nf4", new TensorBlob(DType.U8, new long[]{0}, new byte[0]));
        var good = BnbFormat.blobs("w.weight", s).get("w.weight.quant_state.bitsandbytes__nf4");
        String bad = new String(good.data(), StandardCharsets.UTF_8).replace("\"blocksize\": 64", "\"blocksize\": 48");
        blobs.put("w.weight.quant_state.bitsandbytes__nf4", new TensorBlob(DType.U8, new long[]{bad.length()}, bad.getBytes(StandardCharsets.UTF_8)));
        SafetensorsWriter.write(f, blobs, Map.of());
        try (Safetensors st = Safetensors.open(f)) {
            assertThatThrownBy(() -> BnbFormat.read(st, "w.weight")).hasMessageContaining("power of two");
        }
    }

    @Test
    void fourBitFoldersLoadThroughQloraEverywhereElseNamedErrors() throws Exception {
        Path out = tmp.resolve("q4");
        QuantizeFolder.run(Golden.golden("models/llama-tied"), out, "nf4", 64, true, Long.MAX_VALUE);
        CliRun gen = CliRun.of("generate", "--model", out.toString(), "--prompt-ids", "[1, 2, 3]", "--max-new-tokens", "3", "--ids");
        assertThat(gen.code()).as(gen.err()).isZero();
        try (ModelFolder f = ModelFolder.open(out)) {
            assertThatThrownBy(() -> LlamaModel.load(f, Compute.cpu())).isInstanceOf(HfFormatException.class).hasMessageContaining("4-bit checkpoint");
        }
        CliRun gguf = CliRun.of("export", "gguf", "--model", out.toString(), "--out", tmp.resolve("x.gguf").toString());
        assertThat(gguf.code()).isEqualTo(2);
        assertThat(gguf.err()).contains("4-bit checkpoint");
        try (var files = Files.list(tmp)) {
            assertThat(files.map(p -> p.getFileName().toString())).noneMatch(n -> n.endsWith(".gguf") || n.endsWith(".tmp"));
        }
    }
}
