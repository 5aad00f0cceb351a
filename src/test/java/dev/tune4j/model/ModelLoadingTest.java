package dev.tune4j.model;

import dev.tune4j.hf.DType;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 12 item 1: weights go from the mapped safetensors file into native memory once, converted natively — the Java
 * heap does not see them. Measured as the bytes this thread allocates on the heap while loading (an allocation count,
 * not a timing), against the size of the weights.
 */
class ModelLoadingTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void loadingCopiesNoWeightThroughTheJavaHeap(DType stored) throws Exception {
        var c = new ModelConfig(ModelConfig.Arch.LLAMA, 512, 256, 768, 4, 4, 2, 64, 1e-5, 10_000, ModelConfig.RopeScaling.NONE,
                512, false, false, false, false, 0, 1, List.of(2), null, "float32");
        Path dir = tmp.resolve(stored.name());
        try (LlamaModel m = LlamaModel.random(c, 1, Compute.cpu())) {
            m.save(dir, stored, Long.MAX_VALUE);
        }
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (ModelFolder f = ModelFolder.open(dir)) {
            LlamaModel.load(f, Compute.cpu()).close(); // warm-up: class loading and libtorch's first calls allocate too
            long weights = f.totalBytes();
            long before = threads.getCurrentThreadAllocatedBytes();
            try (LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
                long heap = threads.getCurrentThreadAllocatedBytes() - before;
                assertThat(heap).as("heap bytes allocated while loading %,d bytes of %s weights", weights, stored).isLessThan(weights / 20);
                // and the values are the stored ones (bf16 widens to fp32 exactly)
                String name = "model.layers.1.mlp.down_proj.weight";
                assertThat(Tensors.toFloats(m.layers.get(1).mlp.down_proj.weight)).containsExactly(f.floats(name));
            }
        }
    }
}
