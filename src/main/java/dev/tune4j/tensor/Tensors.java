package dev.tune4j.tensor;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.function.Supplier;

/** Small helpers between Java arrays and libtorch tensors, and the native-lifetime idioms used everywhere. */
public final class Tensors {
    private Tensors() {}

    private static volatile boolean initialized;

    /** Loads libtorch once and sets intra-op threads to the physical cores (TUNE4J_THREADS overrides). */
    public static synchronized void init() {
        if (initialized) return;
        String env = System.getenv("TUNE4J_THREADS");
        int threads = env != null ? Integer.parseInt(env) : Math.max(1, physicalCores());
        torch.set_num_threads(threads);
        initialized = true;
    }

    /** Physical cores from /proc/cpuinfo (hyperthreads slow libtorch's GEMMs); the JVM's count where that is unreadable. */
    static int physicalCores() {
        try {
            var lines = java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/cpuinfo"));
            var cores = new java.util.HashSet<String>();
            String phys = "0";
            for (String l : lines) {
                if (l.startsWith("physical id")) phys = l.substring(l.indexOf(':') + 1).trim();
                if (l.startsWith("core id")) cores.add(phys + "/" + l.substring(l.indexOf(':') + 1).trim());
            }
            if (!cores.isEmpty()) return Math.min(cores.size(), Runtime.getRuntime().availableProcessors());
        } catch (Exception ignored) {
            // fall through
        }
        return Runtime.getRuntime().availableProcessors();
    }

    public static Tensor floats(float[] v, long... shape) {
        return Tensor.create(v, shape);
    }

    public static Tensor longs(long[] v, long... shape) {
        return Tensor.create(v, shape);
    }

    public static Scalar scalar(double v) {
        return new Scalar(v);
    }

    /** Copies any tensor to a host fp32 array (row-major). */
    public static float[] toFloats(Tensor t) {
        try (PointerScope s = new PointerScope()) {
            Tensor c = t.detach().to(new org.bytedeco.pytorch.Device(torch.DeviceType.CPU), torch.ScalarType.Float).contiguous();
            float[] out = new float[Math.toIntExact(c.numel())];
            FloatBuffer b = c.createBuffer();
            b.get(out);
            return out;
        }
    }

    public static long[] toLongs(Tensor t) {
        try (PointerScope s = new PointerScope()) {
            Tensor c = t.to(new org.bytedeco.pytorch.Device(torch.DeviceType.CPU), torch.ScalarType.Long).contiguous();
            long[] out = new long[Math.toIntExact(c.numel())];
            LongBuffer b = c.createBuffer();
            b.get(out);
            return out;
        }
    }

    /**
     * Runs {@code make} inside a scope and lets its result escape: everything else it created is freed when the scope
     * closes, the result carries one extra reference and must be closed by the caller.
     */
    public static Tensor escape(Supplier<Tensor> make) {
        try (PointerScope s = new PointerScope()) {
            Tensor t = make.get();
            t.retainReference();
            return t;
        }
    }

    /** Native objects alive right now (JavaCPP's count): a cheap leak tripwire for tests and long loops. */
    public static long liveNativeObjects() {
        return Pointer.totalCount();
    }
}
