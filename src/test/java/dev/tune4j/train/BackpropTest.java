package dev.tune4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.model.Batch;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

/**
 * Labelled-only chunked cross-entropy and layer-wise recomputation give PEFT's gradients; splitting the batch into
 * micro-batches with one shared normalizer gives the same gradients again (mean over all tokens, not mean of means).
 */
class BackpropTest {
    /** With LoRA dropout, recomputing a layer draws the masks its forward drew: checkpointing changes no gradient. */
    @org.junit.jupiter.api.Test
    void checkpointingReplaysTheDropoutMasks() throws Exception {
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/llama-tied"));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             LoraAdapter lora = LoraAdapter.create(m, new dev.tune4j.peft.LoraConfig(4, 8, 0.3, java.util.List.of("all-linear"), false), 1, "t")) {
            lora.train(true);
            for (var p : lora.namedParameters().values()) p.detach().normal_(0, 0.02, new org.bytedeco.pytorch.GeneratorOptional()); // B ≠ 0: A gets gradients
            long[] ids = new long[2 * 12], labels = new long[ids.length];
            for (int i = 0; i < ids.length; i++) { ids[i] = (i * 37 + 5) % m.config.vocabSize(); labels[i] = i % 12 < 4 ? -100 : ids[i]; }
            var grads = new java.util.ArrayList<float[]>();
            for (boolean checkpoint : new boolean[]{false, true}) {
                org.bytedeco.pytorch.global.torch.manual_seed(42);
                try (PointerScope s = new PointerScope()) {
                    Backprop.tokenLoss(m, Batch.of(Tensors.longs(ids, 2, 12)), labels, 16, checkpoint, 5);
                    var all = new java.util.ArrayList<Float>();
                    for (var p : lora.namedParameters().values()) {
                        for (float v : Tensors.toFloats(p.grad())) all.add(v);
                        p.grad().zero_();
                    }
                    float[] a = new float[all.size()];
                    for (int i = 0; i < a.length; i++) a[i] = all.get(i);
                    grads.add(a);
                }
            }
            assertClose("checkpointed vs not, dropout 0.3", grads.get(1), grads.get(0), 1e-6);
            org.bytedeco.pytorch.global.torch.manual_seed(42); // and the masks did differ from no dropout at all
            lora.train(false);
            try (PointerScope s = new PointerScope()) {
                Backprop.tokenLoss(m, Batch.of(Tensors.longs(ids, 2, 12)), labels, 16, false, 5);
                float[] plain = Tensors.toFloats(lora.namedParameters().values().iterator().next().grad());
                assertThat(java.util.Arrays.equals(plain, java.util.Arrays.copyOf(grads.get(0), plain.length))).isFalse();
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"llama-tied,false,7,1", "llama-tied,true,7,1", "qwen2-untied,true,1000,1", "mistral-rslora,true,5,1", "llama-untied,false,3,2", "qwen2-tied,true,11,2"})
    void gradientsEqualPeft(String name, boolean checkpoint, int chunk, int microBatches) throws Exception {
        var dir = Golden.golden("lora/" + name);
        var meta = new ObjectMapper().readTree(dir.resolve("lora.json").toFile());
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/" + name.replace("-rslora", "")));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(dir.resolve("logits.safetensors"));
             Safetensors grads = Safetensors.open(dir.resolve("grads.safetensors"));
             LoraAdapter lora = LoraAdapter.load(dir.resolve("adapter"), m)) {
            long[] shape = g.info("input_ids").shape();
            long[] ids = g.longs("input_ids"), labels = g.longs("labels");
            int rowsPer = (int) shape[0] / microBatches, t = (int) shape[1];
            long normalizer = 0;
            for (int i = 1; i < labels.length; i++) if (i % t != 0 && labels[i] != -100) normalizer++;
            double lossSum = 0;
            for (int mb = 0; mb < microBatches; mb++) {
                long[] idsMb = java.util.Arrays.copyOfRange(ids, mb * rowsPer * t, (mb + 1) * rowsPer * t);
                long[] labMb = java.util.Arrays.copyOfRange(labels, mb * rowsPer * t, (mb + 1) * rowsPer * t);
                try (PointerScope s = new PointerScope()) {
                    var r = Backprop.tokenLoss(m, Batch.of(Tensors.longs(idsMb, rowsPer, t)), labMb, normalizer, checkpoint, chunk);
                    lossSum += r.loss();
                }
            }
            assertThat(lossSum / normalizer).isCloseTo(meta.get("loss").asDouble(), offset(1e-5));
            for (var e : lora.namedParameters().entrySet()) {
                float[] want = grads.floats(e.getKey());
                double maxAbs = 0;
                for (float w : want) maxAbs = Math.max(maxAbs, Math.abs(w));
                assertClose(name + " " + e.getKey(), Tensors.toFloats(e.getValue().grad()), want, 1e-5 + 1e-4 * maxAbs);
            }
        }
    }
}
