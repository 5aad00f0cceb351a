package dev.tune4j.train;

import dev.tune4j.hf.ModelConfig;
import dev.tune4j.model.Batch;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * 500 LoRA training steps (forward, chunked loss, backward, clipping, AdamW) leave no native objects behind and keep
 * resident memory flat; frozen weights never get a gradient and the optimizer holds state for the adapter only.
 */
class TrainingMemoryTest {
    static final ModelConfig CFG = new ModelConfig(ModelConfig.Arch.LLAMA, 128, 32, 64, 2, 4, 2, 8, 1e-5, 10_000,
            ModelConfig.RopeScaling.NONE, 256, false, false, false, false, 0, 1, List.of(2), null, "float32");

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fiveHundredStepsKeepMemoryFlat(boolean checkpoint) throws Exception {
        try (LlamaModel m = LlamaModel.random(CFG, 3, Compute.cpu());
             LoraAdapter lora = LoraAdapter.create(m, new LoraConfig(4, 8, 0.1, List.of("all-linear"), false), 1, "test");
             AdamW opt = new AdamW(lora.parameters().stream().map(p -> new AdamW.Param(p, 0.01)).toList(), 0.9, 0.999, 1e-8)) {
            lora.train(true);
            long[] ids = new long[2 * 32], labels = new long[2 * 32];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (i * 7) % 128;
                labels[i] = i % 32 < 8 ? -100 : ids[i];
            }
            Runnable step = () -> {
                try (PointerScope s = new PointerScope()) {
                    Backprop.tokenLoss(m, Batch.of(Tensors.longs(ids, 2, 32)), labels, 48, checkpoint, 16);
                }
                GradClip.clip(lora.parameters(), 1.0);
                opt.step(1e-3);
                opt.zeroGrad();
            };
            for (int i = 0; i < 20; i++) step.run();
            Tensors.settleGarbage(); // other tests' GC-owned wrappers must not move the baseline
            long objects = Tensors.liveNativeObjects(), rss = Memory.residentBytes();
            for (int i = 0; i < 500; i++) step.run();
            assertThat(Tensors.liveNativeObjects()).as("native objects after 500 steps").isEqualTo(objects);
            assertThat(Memory.residentBytes() - rss).as("RSS growth over 500 steps").isLessThan(24L << 20);

            // frozen base: no gradient, no optimizer state
            try (PointerScope s = new PointerScope()) {
                Backprop.tokenLoss(m, Batch.of(Tensors.longs(ids, 2, 32)), labels, 48, checkpoint, 16);
                for (Tensor w : m.namedTensors().values()) {
                    assertThat(w.requires_grad()).isFalse();
                    assertThat(w.grad().defined()).isFalse();
                }
                for (Tensor p : lora.parameters()) assertThat(p.grad().defined()).isTrue();
            }
            assertThat(opt.expAvg()).hasSize(lora.parameters().size());
            long stateElems = opt.expAvg().stream().mapToLong(Tensor::numel).sum();
            assertThat(stateElems).isEqualTo(lora.trainableParameterCount());
            opt.zeroGrad();
        }
    }

    /** 500 DPO steps through the one loop's step (reference pass with the adapter off, policy pass, loss graph) stay flat too. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fiveHundredDpoStepsKeepMemoryFlat(boolean checkpoint) throws Exception {
        var rnd = new java.util.Random(5);
        var pairs = new java.util.ArrayList<dev.tune4j.data.PreferencePair>();
        for (int i = 0; i < 6; i++)
            pairs.add(new dev.tune4j.data.PreferencePair(rnd.longs(5 + i, 3, 128).toArray(), rnd.longs(4 + i % 3, 3, 128).toArray(), rnd.longs(6 - i % 2, 3, 128).toArray()));
        var data = PairBatches.pairs(pairs, 2, 0, 1, false, 0);
        try (LlamaModel m = LlamaModel.random(CFG, 3, Compute.cpu());
             LoraAdapter lora = LoraAdapter.create(m, new LoraConfig(4, 8, 0.1, List.of("all-linear"), false), 1, "test");
             AdamW opt = new AdamW(lora.parameters().stream().map(p -> new AdamW.Param(p, 0.01)).toList(), 0.9, 0.999, 1e-8)) {
            var objective = new PreferenceLoss(new PreferenceLoss.Config(PreferenceLoss.Type.SIGMOID, 0.1, 0, 0, 0),
                    PreferenceLoss.switched(m, () -> lora.enable(false), () -> lora.enable(true), 16));
            var trainable = new Trainer.Trainable() {
                public java.util.LinkedHashMap<String, Tensor> parameters() { return lora.namedParameters(); }
                public void train(boolean on) { lora.train(on); }
                public void saveInto(java.nio.file.Path dir) {}
            };
            var loop = new Trainer.Loop(600, 2, 1.0, LrSchedule.of("constant", 1e-3, 0, 600), 0, 0, 0, 0, 1, 0, checkpoint, 16, 1, null, null, "test");
            var trainer = new Trainer(m, trainable, objective, data, data, opt, loop);
            lora.train(true);
            long micro = 0;
            for (int i = 1; i <= 20; i++) micro = trainer.step(i, micro).nextMicro();
            Tensors.settleGarbage();
            long objects = Tensors.liveNativeObjects(), rss = Memory.residentBytes();
            double first = Double.NaN, last = 0;
            for (int i = 21; i <= 520; i++) {
                var st = trainer.step(i, micro);
                micro = st.nextMicro();
                if (i == 21) first = st.loss();
                last = st.loss();
                assertThat(st.metrics()).containsKeys("rewards/chosen", "rewards/margins", "rewards/accuracies", "logps/chosen", "logits/rejected");
            }
            assertThat(Tensors.liveNativeObjects()).as("native objects after 500 DPO steps").isEqualTo(objects);
            assertThat(Memory.residentBytes() - rss).as("RSS growth over 500 DPO steps").isLessThan(24L << 20);
            assertThat(last).as("DPO loss falls on pairs it sees again and again").isLessThan(first);
            for (Tensor w : m.namedTensors().values()) assertThat(w.grad().defined()).as("frozen base has no gradient").isFalse();
        }
    }
}
