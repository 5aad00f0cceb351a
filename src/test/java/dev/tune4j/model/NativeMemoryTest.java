package dev.tune4j.model;

import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.hf.ConfigPresets;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Native memory is freed deterministically: 200 forward passes and a 2,000-token generation leave no native objects
 * behind and keep resident memory flat (the GC is not involved: it is never asked to run).
 */
class NativeMemoryTest {
    static final ModelConfig CFG = new ModelConfig(ModelConfig.Arch.LLAMA, 259, 64, 128, 2, 4, 2, 16, 1e-5, 10_000,
            ModelConfig.RopeScaling.NONE, 4096, true, false, false, false, 0, 1, List.of(2), null, "float32");

    @Test
    void repeatedForwardPassesKeepMemoryFlat() throws Exception {
        try (LlamaModel m = LlamaModel.random(CFG, 1, Compute.cpu())) {
            long[] ids = new long[4 * 128];
            for (int i = 0; i < ids.length; i++) ids[i] = (i * 31) % CFG.vocabSize();
            Runnable pass = () -> {
                try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                    m.logits(Tensors.longs(ids, 4, 128), null, Tensors.longs(LlamaModelTest.ones(ids.length), 4, 128)).sum().item_float();
                }
            };
            for (int i = 0; i < 20; i++) pass.run(); // warm-up: allocator pools, lazy natives
            Tensors.settleGarbage(); // other tests' GC-owned wrappers must not move the baseline
            long objects = Tensors.liveNativeObjects(), rss = Memory.residentBytes();
            for (int i = 0; i < 200; i++) pass.run();
            assertThat(Tensors.liveNativeObjects()).as("native objects after 200 passes").isEqualTo(objects);
            assertThat(Memory.residentBytes() - rss).as("RSS growth over 200 passes").isLessThan(24L << 20);
        }
    }

    /**
     * LoRA steps with dropout (fp32 and the bf16-matmul path, with and without checkpointing): the hand-differentiated
     * dropout's hooks and handles are freed, not left to the GC, and nothing accumulates from step to step.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"false,false", "true,false", "true,true"})
    void loraStepsWithDropoutKeepMemoryFlat(boolean bf16, boolean checkpoint) throws Exception {
        try (LlamaModel m = LlamaModel.random(CFG, 3, bf16 ? Compute.cpuBf16Matmul() : Compute.cpu());
             var lora = dev.tune4j.peft.LoraAdapter.create(m, new dev.tune4j.peft.LoraConfig(4, 8, 0.1, List.of("all-linear"), false), 1, "t")) {
            lora.train(true);
            long[] ids = new long[2 * 32], labels = new long[ids.length];
            for (int i = 0; i < ids.length; i++) { ids[i] = (i * 37 + 5) % CFG.vocabSize(); labels[i] = ids[i]; }
            Runnable step = () -> {
                try (PointerScope s = new PointerScope()) {
                    dev.tune4j.train.Backprop.tokenLoss(m, Batch.of(Tensors.longs(ids, 2, 32)), labels, ids.length, checkpoint, 16);
                    for (var p : lora.namedParameters().values()) p.mutable_grad().reset();
                }
            };
            for (int i = 0; i < 5; i++) step.run();
            Tensors.settleGarbage();
            long objects = Tensors.liveNativeObjects();
            for (int i = 0; i < 50; i++) step.run();
            assertThat(Tensors.liveNativeObjects()).as("native objects after 50 steps").isEqualTo(objects);
        }
    }

    @Test
    void longGenerationKeepsMemoryFlat() throws Exception {
        try (LlamaModel m = LlamaModel.random(CFG, 2, Compute.cpu())) {
            Generator.generate(m, new long[]{1, 5, 9}, GenerationConfig.greedy(200), null, null); // warm-up
            Tensors.settleGarbage(); // other tests' GC-owned wrappers must not move the baseline
            long objects = Tensors.liveNativeObjects(), rss = Memory.residentBytes();
            var r = Generator.generate(m, new long[]{1, 5, 9}, GenerationConfig.greedy(2000), null, null);
            assertThat(r.tokens()).hasSize(2000);
            assertThat(Tensors.liveNativeObjects()).as("native objects after 2,000 tokens").isEqualTo(objects);
            assertThat(Memory.residentBytes() - rss).as("RSS growth over 2,000 tokens").isLessThan(24L << 20);
        }
    }
}
