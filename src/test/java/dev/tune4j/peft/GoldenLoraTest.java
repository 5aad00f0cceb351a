package dev.tune4j.peft;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.model.CausalLmLoss;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;

/** PEFT adapters from golden/lora: logits with the adapter, merged logits, gradients of every lora_A/B, and a save round trip. */
class GoldenLoraTest {
    static final String[] CASES = {"llama-tied", "llama-untied", "qwen2-tied", "qwen2-untied", "mistral"};

    @TempDir
    Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {"llama-tied", "llama-untied", "qwen2-tied", "qwen2-untied", "mistral",
            "llama-tied-rslora", "llama-untied-rslora", "qwen2-tied-rslora", "qwen2-untied-rslora", "mistral-rslora"})
    void adapterLogitsMergeAndGradientsEqualPeft(String name) throws Exception {
        Path dir = Golden.golden("lora/" + name);
        String base = name.replace("-rslora", "");
        var meta = new ObjectMapper().readTree(dir.resolve("lora.json").toFile());
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/" + base));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(dir.resolve("logits.safetensors"));
             Safetensors grads = Safetensors.open(dir.resolve("grads.safetensors"));
             LoraAdapter lora = LoraAdapter.load(dir.resolve("adapter"), m)) {
            assertThat(lora.config.rslora()).isEqualTo(name.endsWith("rslora"));
            long[] shape = g.info("input_ids").shape();
            float[] baseLogits;
            try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                Tensor ids = Tensors.longs(g.longs("input_ids"), shape);
                assertClose(name + " logits with adapter", Tensors.toFloats(m.logits(ids, null, null)), g.floats("logits"), 1e-4);
                lora.merge();
                assertClose(name + " merged logits", Tensors.toFloats(m.logits(ids, null, null)), g.floats("merged_logits"), 1e-4);
                lora.unmerge();
                assertClose(name + " unmerged again", Tensors.toFloats(m.logits(ids, null, null)), g.floats("logits"), 1e-4);
            }
            // gradients: one backward of the mean loss over labelled tokens, base frozen
            try (PointerScope s = new PointerScope()) {
                Tensor ids = Tensors.longs(g.longs("input_ids"), shape);
                Tensor loss = CausalLmLoss.mean(m.logits(ids, null, null), Tensors.longs(g.longs("labels"), shape));
                assertThat(loss.item_double()).isCloseTo(meta.get("loss").asDouble(), org.assertj.core.data.Offset.offset(1e-5));
                loss.backward();
                assertThat(m.embed_tokens.grad().defined()).as("frozen base has no gradient").isFalse();
                int checked = 0;
                for (var e : lora.namedParameters().entrySet()) {
                    float[] got = Tensors.toFloats(e.getValue().grad()), want = grads.floats(e.getKey());
                    double maxAbs = 0;
                    for (float w : want) maxAbs = Math.max(maxAbs, Math.abs(w));
                    assertClose(name + " grad " + e.getKey(), got, want, 1e-5 + 1e-4 * maxAbs);
                    checked++;
                }
                assertThat(checked).isEqualTo(grads.tensors().size());
            }
            // save → PEFT keys and shapes identical to PEFT's file, values round-trip exactly
            lora.save(tmp.resolve("out"));
            try (Safetensors mine = Safetensors.open(tmp.resolve("out/adapter_model.safetensors"));
                 Safetensors theirs = Safetensors.open(dir.resolve("adapter/adapter_model.safetensors"))) {
                assertThat(mine.tensors()).hasSameSizeAs(theirs.tensors());
                for (var t : theirs.tensors()) {
                    assertThat(mine.info(t.name()).shape()).as(t.name()).containsExactly(t.shape());
                    assertThat(mine.floats(t.name())).as(t.name()).containsExactly(theirs.floats(t.name()));
                }
            }
            var mineCfg = new ObjectMapper().readTree(tmp.resolve("out/adapter_config.json").toFile());
            var theirCfg = new ObjectMapper().readTree(dir.resolve("adapter/adapter_config.json").toFile());
            var fields = new java.util.TreeSet<String>();
            theirCfg.fieldNames().forEachRemaining(fields::add);
            var ours = new java.util.TreeSet<String>();
            mineCfg.fieldNames().forEachRemaining(ours::add);
            assertThat(ours).containsExactlyElementsOf(fields);
            for (String k : new String[]{"r", "lora_alpha", "use_rslora", "peft_type", "task_type", "bias"})
                assertThat(mineCfg.get(k).asText()).as(k).isEqualTo(theirCfg.get(k).asText());
            var mineTargets = new java.util.TreeSet<String>();
            mineCfg.get("target_modules").forEach(x -> mineTargets.add(x.asText()));
            var theirTargets = new java.util.TreeSet<String>();
            theirCfg.get("target_modules").forEach(x -> theirTargets.add(x.asText()));
            assertThat(mineTargets).isEqualTo(theirTargets);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-tied", "qwen2-untied", "mistral"})
    void peftMergedFolderLoadsAsAPlainModel(String name) throws Exception {
        Path dir = Golden.golden("lora/" + name);
        try (ModelFolder f = ModelFolder.open(dir.resolve("merged")); LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(dir.resolve("logits.safetensors"));
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor ids = Tensors.longs(g.longs("input_ids"), g.info("input_ids").shape());
            assertClose(name + " merged folder", Tensors.toFloats(m.logits(ids, null, null)), g.floats("merged_logits"), 1e-4);
        }
        assertThat(Files.exists(dir.resolve("merged/config.json"))).isTrue();
    }
}
