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

    /**
     * Loads libtorch once and sets its intra-op (OpenMP) threads: 1 by default, TUNE4J_THREADS overrides. The CPU build's
     * GEMMs run on OpenBLAS's own thread pool, which already uses every core; a second, spinning OpenMP pool on the same
     * cores made forward passes 3–15× slower on the 2-core machine (docs/decisions/0002-cpu-threads.md). Also fixes
     * glibc's mmap threshold ({@link NativeHeap}).
     */
    public static synchronized void init() {
        if (initialized) return;
        NativeHeap.configure(); // before libtorch allocates anything
        String env = System.getenv("TUNE4J_THREADS");
        int n = 1;
        if (env != null && env.strip().matches("[1-9][0-9]{0,3}")) n = Integer.parseInt(env.strip());
        else if (env != null) System.err.println("warning: TUNE4J_THREADS: expected a thread count from 1 to 9999, found '" + env + "'; using 1");
        torch.set_num_threads(n);
        initialized = true;
    }

    /**
     * A libtorch tensor copied straight from native memory (a mapped safetensors slice of {@code stored} type) into one of
     * type {@code as}: one native copy, converting on the way, never through a Java array. A temporary of the caller's
     * scope. {@code nonFinite} gets the first flat index holding NaN or ±Inf and its value, checked natively before the copy (it may throw).
     */
    public static Tensor copyOf(long address, torch.ScalarType stored, torch.ScalarType as, long[] shape, NonFinite nonFinite) {
        return scoped(() -> {
            Tensor view = torch.from_blob(new Address(address), shape, new org.bytedeco.pytorch.TensorOptions(stored));
            // max and min are NaN or infinite exactly when some element is (max propagates NaN): two reductions, no
            // tensor-sized temporaries; the element is located only when there is one
            if (view.numel() > 0 && (!Double.isFinite(view.max().item_double()) || !Double.isFinite(view.min().item_double()))) {
                Tensor bad = torch.isfinite(view).logical_not().flatten();
                long i = bad.to(torch.ScalarType.Byte).argmax().item_long();
                nonFinite.at(i, view.flatten().select(0, i).item_double());
            }
            // allocated first, advised to huge pages, then filled: a preloaded tcmalloc's fresh spans would otherwise fault
            // in 4 KiB pages (glibc's large mappings get huge pages from GLIBC_TUNABLES; decisions 0009, 0012)
            Tensor out = torch.empty(shape, new org.bytedeco.pytorch.TensorOptions(as), new org.bytedeco.pytorch.MemoryFormatOptional());
            if (NativeHeap.cachingAllocator()) NativeHeap.adviseHugePages(out);
            return out.copy_(view);
        });
    }

    private static Boolean allCores;    // which thread layout is in force (null: init's)
    private static int openBlasDefault; // OpenBLAS's own count, restored when the fp32 layout returns

    /**
     * The threads for a compute path, set when the path changes (one JVM may train both: tests, the demo). fp32: one
     * libtorch thread and OpenBLAS's pool on every core (decision 0002). bf16 GEMMs: they run in oneDNN on libtorch's
     * OpenMP pool, which gets every core, and OpenBLAS, left with the small fp32 GEMMs (LoRA's), gets one thread: two
     * busy pools on the same cores cost 2.5× in time (decision 0008). TUNE4J_THREADS and OPENBLAS_NUM_THREADS, when set,
     * decide instead.
     */
    public static synchronized void useCores(boolean bf16Matmul) {
        init();
        if (allCores != null && allCores == bf16Matmul) return;
        if (allCores == null && !bf16Matmul) { // init's layout already
            allCores = false;
            return;
        }
        if (System.getenv("TUNE4J_THREADS") == null) torch.set_num_threads(bf16Matmul ? Runtime.getRuntime().availableProcessors() : 1);
        if (System.getenv("OPENBLAS_NUM_THREADS") == null) {
            int before = openBlasThreads(bf16Matmul ? 1 : openBlasDefault);
            if (bf16Matmul && before > 0) openBlasDefault = before;
        }
        allCores = bf16Matmul;
    }

    /**
     * openblas_set_num_threads on every OpenBLAS in this process (found in its mappings: the JavaCPP presets load both
     * libopenblas and libopenblas_nolapack, and libtorch calls one of them); the count before, or 0 when there is none.
     */
    private static int openBlasThreads(int n) {
        int before = 0;
        try {
            var libs = new java.util.TreeSet<String>();
            for (String l : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/maps")))
                if (l.contains("/libopenblas") && l.indexOf('/') > 0) libs.add(l.substring(l.indexOf('/')));
            var linker = java.lang.foreign.Linker.nativeLinker();
            for (String lib : libs) {
                var lookup = java.lang.foreign.SymbolLookup.libraryLookup(java.nio.file.Path.of(lib), java.lang.foreign.Arena.global());
                var get = lookup.find("openblas_get_num_threads");
                if (get.isPresent() && before == 0)
                    before = (int) linker.downcallHandle(get.get(), java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT)).invoke();
                var set = lookup.find("openblas_set_num_threads");
                if (set.isPresent() && n > 0)
                    linker.downcallHandle(set.get(), java.lang.foreign.FunctionDescriptor.ofVoid(java.lang.foreign.ValueLayout.JAVA_INT)).invoke(n);
            }
        } catch (Throwable e) {
            System.err.println("warning: could not set OpenBLAS's threads to " + n + " (" + e + "); its pool may share the cores with libtorch's");
        }
        return before;
    }

    public interface NonFinite {
        void at(long flatIndex, double value);
    }

    /** A raw address as a JavaCPP pointer (from_blob reads it; nothing here owns or frees it). */
    private static final class Address extends Pointer {
        Address(long address) {
            this.address = address;
        }
    }

    public static Tensor floats(float[] v, long... shape) {
        return Tensor.create(v, shape);
    }

    public static Tensor longs(long[] v, long... shape) {
        return Tensor.create(v, shape);
    }

    /** A 1-D float64 tensor (small loss graphs over per-sequence sums). */
    public static Tensor doubles(double[] v) {
        return Tensor.create(v, v.length);
    }

    /** The shape of a tensor as a Java array (the temporary size wrappers are freed here, not left to the GC). */
    public static long[] shape(Tensor t) {
        try (PointerScope s = new PointerScope()) {
            return t.sizes().vec().get();
        }
    }

    /**
     * For tests and tripwires: lets the GC finish freeing native wrappers that other code (tests, libraries) left to it,
     * so a following {@link #liveNativeObjects()} baseline counts only what is really alive.
     */
    public static void settleGarbage() throws InterruptedException {
        long before;
        do {
            before = Pointer.totalCount();
            System.gc();
            Thread.sleep(50);
        } while (Pointer.totalCount() < before);
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

    /** A uint8 tensor's bytes (row-major). */
    public static byte[] toBytes(Tensor t) {
        try (PointerScope s = new PointerScope()) {
            Tensor c = t.to(new org.bytedeco.pytorch.Device(torch.DeviceType.CPU), torch.ScalarType.Byte).contiguous();
            byte[] out = new byte[Math.toIntExact(c.numel())];
            java.nio.ByteBuffer b = c.createBuffer();
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
    public static <P extends Pointer> P escape(Supplier<P> make) {
        try (PointerScope s = new PointerScope()) {
            P t = make.get();
            t.retainReference();
            return t;
        }
    }

    /**
     * Runs {@code make} in its own scope and moves only its result to the caller's scope: the temporaries it created are
     * freed as soon as it returns instead of living until the caller's scope closes. Autograd keeps whatever backward
     * needs through its own C++ references, so this is safe under gradients too. Without an enclosing scope the result
     * carries one reference the caller must close.
     */
    public static Tensor scoped(Supplier<Tensor> make) {
        PointerScope outer = PointerScope.getInnerScope();
        Tensor t = escape(make);
        if (outer != null) {
            outer.attach(t);
            t.releaseReference();
        }
        return t;
    }

    /** Native objects alive right now (JavaCPP's count): a cheap leak tripwire for tests and long loops. */
    public static long liveNativeObjects() {
        return Pointer.totalCount();
    }
}
