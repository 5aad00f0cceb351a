package dev.tune4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;

/** Logits, hidden states and loss of every golden case equal transformers 4.44.2 (fp32, CPU). */
class GoldenForwardTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static Path modelDir(String c) {
        return Golden.golden("models/" + c);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-untied", "llama-tied", "qwen2-untied", "qwen2-tied", "mistral", "sharded"})
    void forwardMatchesTransformers(String name) throws Exception {
        Path caseDir = Golden.golden("cases/" + name);
        JsonNode meta = JSON.readTree(caseDir.resolve("forward.json").toFile());
        try (ModelFolder f = ModelFolder.open(modelDir(name));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(caseDir.resolve("forward.safetensors"));
             PointerScope s = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            long[] shape = g.info("input_ids").shape();
            Tensor ids = Tensors.longs(g.longs("input_ids"), shape);
            var hs = new ArrayList<Tensor>();
            Tensor hidden = m.forward(ids, null, null, null, hs);
            Tensor logits = m.logits(hidden);
            assertClose(name + " logits", Tensors.toFloats(logits), g.floats("logits"), 1e-4);
            // hidden_states: embeddings, each layer but the last, then the final norm's output
            if (g.contains("hidden_states")) {
            float[] golden = g.floats("hidden_states");
            int per = golden.length / (m.config.numLayers() + 1);
            for (int i = 0; i < m.config.numLayers(); i++)
                assertClose(name + " hidden_states[" + i + "]", Tensors.toFloats(hs.get(i)), Arrays.copyOfRange(golden, i * per, (i + 1) * per), 1e-4);
            assertClose(name + " final hidden", Tensors.toFloats(hidden), Arrays.copyOfRange(golden, m.config.numLayers() * per, golden.length), 1e-4);
            }
            var loss = CausalLmLoss.sum(logits, Tensors.longs(g.longs("labels"), shape));
            assertThat(loss.mean()).as(name + " loss").isCloseTo(meta.get("loss").asDouble(), org.assertj.core.data.Offset.offset(1e-5));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-untied", "llama-tied", "qwen2-untied", "qwen2-tied", "mistral"})
    void rightPaddedBatchMatches(String name) throws Exception {
        Path caseDir = Golden.golden("cases/" + name);
        try (ModelFolder f = ModelFolder.open(modelDir(name));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(caseDir.resolve("forward_padded.safetensors"));
             PointerScope s = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            long[] shape = g.info("input_ids").shape();
            long[] maskV = g.longs("attention_mask");
            Tensor logits = m.logits(Tensors.longs(g.longs("input_ids"), shape), null, Tensors.longs(maskV, shape));
            float[] got = Tensors.toFloats(logits), want = g.floats("logits");
            int v = m.config.vocabSize();
            for (int p = 0; p < maskV.length; p++) {
                if (maskV[p] == 0) continue; // only unpadded positions are meaningful
                assertClose(name + " padded logits at flat position " + p, Arrays.copyOfRange(got, p * v, (p + 1) * v),
                        Arrays.copyOfRange(want, p * v, (p + 1) * v), 1e-4);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void bf16FolderLoadsAndMatchesFp32Compute() throws Exception {
        Path caseDir = Golden.golden("cases/bf16");
        JsonNode meta = JSON.readTree(caseDir.resolve("forward.json").toFile());
        try (ModelFolder f = ModelFolder.open(modelDir("bf16"));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(caseDir.resolve("forward.safetensors"));
             PointerScope s = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            assertThat(f.dtypeCounts()).containsOnlyKeys(dev.tune4j.hf.DType.BF16);
            long[] shape = g.info("input_ids").shape();
            Tensor logits = m.logits(Tensors.longs(g.longs("input_ids"), shape), null, null);
            assertClose("bf16 weights, fp32 compute", Tensors.toFloats(logits), g.floats("logits_fp32_compute"), 1e-4);
            assertThat(meta.toString()).contains("loss");
        }
    }

    /** The precision the CUDA build uses (bf16 weights and activations), run on the CPU against HF's own bf16 run. */
    @org.junit.jupiter.api.Test
    void bf16ComputeAgreesWithTransformersBf16() throws Exception {
        Path caseDir = Golden.golden("cases/bf16");
        try (ModelFolder f = ModelFolder.open(modelDir("bf16"));
             LlamaModel m = LlamaModel.load(f, new Compute(false, true));
             Safetensors g = Safetensors.open(caseDir.resolve("forward.safetensors"));
             PointerScope s = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            long[] shape = g.info("input_ids").shape();
            assertThat(m.embed_tokens.scalar_type().intern()).isEqualTo(org.bytedeco.pytorch.global.torch.ScalarType.BFloat16);
            float[] got = Tensors.toFloats(m.logits(Tensors.longs(g.longs("input_ids"), shape), null, null));
            float[] want = g.floats("logits_bf16_compute");
            int v = m.config.vocabSize(), rows = got.length / v, agree = 0;
            double sum = 0;
            for (int r = 0; r < rows; r++) {
                if (argmax(got, r * v, v) == argmax(want, r * v, v)) agree++;
                for (int i = r * v; i < (r + 1) * v; i++) sum += Math.abs(got[i] - want[i]);
            }
            // README of golden/: HF's own bf16-vs-fp32 runs differ by mean 0.0255, top-1 97.9%; allow about 1.5x that
            assertThat(sum / got.length).as("mean |diff| vs HF bf16").isLessThan(0.04);
            assertThat((double) agree / rows).as("top-1 agreement").isGreaterThanOrEqualTo(0.95);
        }
    }

    static int argmax(float[] a, int from, int n) {
        int best = from;
        for (int i = from; i < from + n; i++) if (a[i] > a[best]) best = i;
        return best - from;
    }
}
