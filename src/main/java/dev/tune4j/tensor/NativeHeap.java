package dev.tune4j.tensor;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * libtorch's CPU tensors come from malloc. glibc serves blocks above a threshold with mmap (returned to the system when
 * freed) and smaller ones from its heaps (kept), and it raises that threshold to the size of every mmap'd block freed, up
 * to 32 MiB. After the first step nearly every activation is heap memory, and freed activations stay resident: a
 * gradient-checkpointed LoRA step of stories260K peaks at 852 MiB where 612 MiB are ever live. {@code
 * TUNE4J_MMAP_THRESHOLD=1048576} fixes the threshold at 1 MiB, so large tensors go back to the system when freed — 19–33 %
 * lower peaks, but every large allocation then faults its pages in afresh: stories260K trains at half the speed. So it is
 * opt-in for small models; a gradient-checkpointed run of a model of 100 M parameters or more — a run that already
 * trades speed for memory — fixes it by default ({@link #fixForLargeCheckpointedRun}; Qwen2.5-0.5B shape: peak 6,090 →
 * 4,247 MiB for +10 % training time). docs/decisions/0006-native-heap.md has the measurements. {@code MALLOC_MMAP_THRESHOLD_}
 * (glibc's own knob) and an explicit {@code TUNE4J_MMAP_THRESHOLD} (0: glibc's default) win; elsewhere than glibc nothing is done.
 */
public final class NativeHeap {
    private NativeHeap() {}

    static final int M_MMAP_THRESHOLD = -3; // glibc's malloc.h
    static final long DEFAULT_THRESHOLD = 0; // glibc's own behaviour unless asked

    /** Below this, a model's checkpointed run keeps glibc's default (stories260K trained at half the speed with the fix). */
    public static final long LARGE_MODEL_PARAMETERS = 100_000_000L;

    /**
     * A gradient-checkpointed run of a large model: fixes the threshold at 1 MiB unless the environment chose (either
     * variable set). Returns the threshold set, or 0 when nothing changed.
     */
    public static long fixForLargeCheckpointedRun(long parameters) {
        if (parameters < LARGE_MODEL_PARAMETERS || cachingAllocator() || System.getenv("MALLOC_MMAP_THRESHOLD_") != null || System.getenv("TUNE4J_MMAP_THRESHOLD") != null) return 0;
        return mallopt(1L << 20);
    }

    /** The threshold set, or 0 when glibc's default was left alone. */
    static long configure() {
        if (System.getenv("MALLOC_MMAP_THRESHOLD_") != null) return 0;
        long bytes = DEFAULT_THRESHOLD;
        String env = System.getenv("TUNE4J_MMAP_THRESHOLD");
        if (env != null) {
            if (!env.strip().matches("\\d{1,9}")) {
                System.err.println("warning: TUNE4J_MMAP_THRESHOLD: expected a byte count from 0 to 33554432, found '" + env + "'; ignored");
            } else bytes = Math.min(Long.parseLong(env.strip()), 32L << 20);
        }
        return bytes == 0 ? 0 : mallopt(bytes);
    }

    private static String tcmalloc; // the preloaded library's path, "" when there is none; null until read

    /**
     * Whether the process allocates through tcmalloc (the launcher preloads it where the system has it; decision 0012):
     * a caching allocator keeps a step's freed tensors for the next step instead of refaulting and fragmenting glibc's
     * heaps, so the planner uses its own slack. Read once from the process's mappings.
     */
    public static synchronized boolean cachingAllocator() {
        if (tcmalloc == null) {
            try {
                tcmalloc = java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/maps")).stream()
                        .filter(l -> l.contains("/libtcmalloc") && l.indexOf('/') > 0).map(l -> l.substring(l.indexOf('/'))).findFirst().orElse("");
            } catch (java.io.IOException | RuntimeException e) {
                tcmalloc = ""; // no /proc (not Linux): glibc's behaviour is the conservative guess
            }
        }
        return !tcmalloc.isEmpty();
    }

    private static final long HUGE_PAGE = 2L << 20;
    private static final int MADV_HUGEPAGE = 14; // Linux's <sys/mman.h>
    private static MethodHandle madvise;

    /**
     * Asks for transparent huge pages on the 2 MiB pages wholly inside [address, address + bytes) (madvise; THP's
     * "madvise" mode, the usual default, gives them only where asked), before the memory is first touched. Loading a
     * Qwen2.5-0.5B folder through tcmalloc: ~0.3 s of 4 KiB page faults. Does nothing for small tensors (an empty one has
     * no storage) or without Linux.
     */
    static void adviseHugePages(org.bytedeco.pytorch.Tensor t) {
        long bytes = t.nbytes();
        if (bytes < 2 * HUGE_PAGE) return; // no whole 2 MiB page inside
        long address = t.data_ptr().address();
        long start = (address + HUGE_PAGE - 1) & -HUGE_PAGE, end = (address + bytes) & -HUGE_PAGE;
        if (end - start < HUGE_PAGE) return;
        try {
            if (madvise == null) madvise = glibc("madvise", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            if (madvise != null) { int ignored = (int) madvise.invokeExact(java.lang.foreign.MemorySegment.ofAddress(start), end - start, MADV_HUGEPAGE); }
        } catch (Throwable e) {
            // an advice: without it the pages are merely small
        }
    }

    /** The allocator in a word, for logs and bench output. */
    public static String allocatorName() {
        return cachingAllocator() ? "tcmalloc" : "glibc";
    }

    /**
     * Gives the heaps' free pages back to the system (glibc's malloc_trim(0), after a full Java collection, which
     * shrinks the Java heap): after loading, where the freed fp32 temporaries of a conversion or quantization (QLoRA's
     * go through Java float arrays) would otherwise stay resident for the whole run. Returns whether glibc released
     * anything; elsewhere than glibc only the Java heap shrinks.
     */
    public static boolean trim() {
        System.gc(); // a full collection also gives the Java heap's garbage back (QLoRA quantizes through float arrays)
        if (cachingAllocator()) try { // tcmalloc's own call: its cached free spans go back
            var symbol = java.lang.foreign.SymbolLookup.libraryLookup(java.nio.file.Path.of(tcmalloc), java.lang.foreign.Arena.global()).find("MallocExtension_ReleaseFreeMemory");
            if (symbol.isEmpty()) return false;
            MethodHandle release = Linker.nativeLinker().downcallHandle(symbol.get(), FunctionDescriptor.ofVoid());
            release.invokeExact();
            return true;
        } catch (Throwable e) {
            return false;
        }
        try {
            MethodHandle trim = glibc("malloc_trim", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
            return trim != null && (int) trim.invokeExact(0L) == 1;
        } catch (Throwable e) {
            return false;
        }
    }

    private static long mallopt(long bytes) {
        try {
            MethodHandle mallopt = glibc("mallopt", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            return mallopt != null && (int) mallopt.invokeExact(M_MMAP_THRESHOLD, (int) bytes) == 1 ? bytes : 0;
        } catch (Throwable e) { // not glibc, or native access refused: the default allocator behaviour stays
            return 0;
        }
    }

    /** A C library function by name, or null where the process's libraries have none (not glibc). */
    private static MethodHandle glibc(String name, FunctionDescriptor signature) {
        Linker linker = Linker.nativeLinker();
        return linker.defaultLookup().find(name).map(symbol -> linker.downcallHandle(symbol, signature)).orElse(null);
    }
}
