package dev.tune4j.tensor;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The fixed mmap threshold is for checkpointed runs of large models only (decision 0006): small ones keep glibc's default.
 * A preloaded tcmalloc is recognised (decision 0012).
 */
class NativeHeapTest {
    @Test
    void smallModelsKeepGlibcsDefault() {
        assertThat(NativeHeap.fixForLargeCheckpointedRun(260_032)).isZero();
        assertThat(NativeHeap.fixForLargeCheckpointedRun(NativeHeap.LARGE_MODEL_PARAMETERS - 1)).isZero();
        assertThat(NativeHeap.LARGE_MODEL_PARAMETERS).isEqualTo(100_000_000L);
    }

    /**
     * This JVM runs on glibc's malloc (surefire preloads nothing); a child with tcmalloc preloaded says so, trims through it
     * and advises huge pages on a loaded tensor's storage (an empty tensor has none).
     */
    @Test
    void recognisesAPreloadedTcmalloc() throws Exception {
        assertThat(NativeHeap.allocatorName()).isEqualTo("glibc");
        Path lib = List.of("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4").stream().map(Path::of).filter(Files::exists).findFirst().orElse(null);
        Assumptions.assumeTrue(lib != null, "libtcmalloc-minimal4 is not installed (.ci/run installs it)");
        var pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Child.class.getName()).redirectErrorStream(true);
        pb.environment().put("LD_PRELOAD", lib.toString());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes()).strip();
        assertThat(p.waitFor()).as(out).isZero();
        assertThat(out).endsWith("tcmalloc trimmed=true advised");
    }

    /** Prints the allocator a process sees and whether trim reached it; advises huge pages on an empty and a 6 MiB tensor. */
    public static final class Child {
        public static void main(String[] args) {
            String line = NativeHeap.allocatorName() + " trimmed=" + NativeHeap.trim();
            NativeHeap.adviseHugePages(org.bytedeco.pytorch.global.torch.empty(0));
            NativeHeap.adviseHugePages(org.bytedeco.pytorch.global.torch.empty(1536, 1024));
            System.out.println(line + " advised");
        }
    }
}
