package dev.tune4j.tensor;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** The fixed mmap threshold is for checkpointed runs of large models only (decision 0006): small ones keep glibc's default. */
class NativeHeapTest {
    @Test
    void smallModelsKeepGlibcsDefault() {
        assertThat(NativeHeap.fixForLargeCheckpointedRun(260_032)).isZero();
        assertThat(NativeHeap.fixForLargeCheckpointedRun(NativeHeap.LARGE_MODEL_PARAMETERS - 1)).isZero();
        assertThat(NativeHeap.LARGE_MODEL_PARAMETERS).isEqualTo(100_000_000L);
    }
}
