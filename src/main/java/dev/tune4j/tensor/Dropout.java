package dev.tune4j.tensor;

import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Inverted dropout (train mode): x · keep / (1 − p). libtorch's CPU dropout draws every element from its one serial
 * mt19937 generator (its vectorized path needs an Intel CPU with MKL) and keeps 4-byte fp32 noise for the backward:
 * LoRA dropout on every projection input took 40 % of a SmolLM2-135M step (447 → 258 tokens/s). Here a mask is a
 * function of one seed (a draw from libtorch's generator): element i is dropped when its 16 bits of SplitMix64's output
 * for counter i/4 fall below p·2¹⁶, so the drop probability is p rounded to a multiple of 2⁻¹⁶, and the scale comes from
 * that same value: the expectation is exact. The draw runs on the calling thread in loops the JIT vectorizes (p ≤ ½), ~0.17 ns
 * an element (Java's fork-join pool beside libtorch's spinning OpenMP threads made a parallel draw 1.5× slower inside a
 * training step). It yields the dropped elements' flat indices ({@link #droppedAt}: 4 bytes per dropped element, a fifth
 * of a bf16 mask at p = 0.05), which zero any tensor of the shape in one cheap pass ({@link #zeroAt}): peft/LoraDropout
 * keeps them from LoRA's forward to its backward instead of a mask or x·m. Where autograd needs a mask ({@link #keep}),
 * it is in x's dtype (2 bytes an element in bf16): libtorch's multiply by a bool mask is ~15× slower (fwd + bwd of a 1024 × 576 bf16 input: 1.07 vs
 * 0.07 ms). CUDA and other dtypes use libtorch's own dropout.
 */
public final class Dropout {
    private Dropout() {}

    private static final int BLOCK = 1 << 16;
    private static final int LEVELS = 1 << 16; // a drop probability is a multiple of 1/LEVELS

    /** x with dropped elements zeroed, and the factor 1/(1 − p) still to apply (a linear consumer folds it into its own scale). */
    public record Kept(Tensor x, double scale) {}

    public static Tensor apply(Tensor x, double p) {
        Kept k = keep(x, p);
        return k.scale == 1 ? k.x : k.x.mul(new Scalar(k.scale));
    }

    public static Kept keep(Tensor x, double p) {
        if (p <= 0) return new Kept(x, 1);
        if (!ownDropout(x)) return new Kept(torch.native_dropout(x, p, new BoolOptional(true)).get0(), 1);
        long seed = seed();
        // autograd needs a mask to multiply by; without a gradient to x (checkpointing's first pass) a copy zeroed in place does
        boolean graph = x.requires_grad() && org.bytedeco.pytorch.GradMode.is_enabled();
        return new Kept(graph ? x.mul(mask(x, p, seed)) : dropped(x, p, seed), scale(p));
    }

    /**
     * x·m without a mask tensor: a contiguous copy of x with the elements this seed's mask drops zeroed, in the same pass
     * as those of {@code alsoZeroed} (tensors of x's shape).
     */
    public static Tensor dropped(Tensor x, double p, long seed, Tensor... alsoZeroed) {
        return Tensors.scoped(() -> dropped(x, droppedAt(x.numel(), p, seed), alsoZeroed));
    }

    /** x·m for a mask given as its dropped flat indices ({@link #droppedAt}), zeroing the same elements of {@code alsoZeroed}. */
    public static Tensor dropped(Tensor x, Tensor indices, Tensor... alsoZeroed) {
        Tensor kept = x.contiguous().clone();
        var all = new Tensor[alsoZeroed.length + 1];
        all[0] = kept;
        System.arraycopy(alsoZeroed, 0, all, 1, alsoZeroed.length);
        zeroAt(indices, all);
        return kept;
    }

    /** Whether this class draws x's masks (CPU, bf16 or fp32): functions of their seed, as flat indices or in place. */
    public static boolean ownDropout(Tensor x) {
        var dtype = x.scalar_type().intern();
        return !x.is_cuda() && (dtype == torch.ScalarType.BFloat16 || dtype == torch.ScalarType.Float);
    }

    /** One mask's seed: one draw from libtorch's CPU generator, so replaying the generator's state replays the mask. */
    public static long seed() {
        return torch.randint(Long.MIN_VALUE, Long.MAX_VALUE, new long[]{1}, new TensorOptions(torch.ScalarType.Long)).item_long();
    }

    /** The factor 1/(1 − p) for p as the masks round it. */
    public static double scale(double p) {
        return (double) LEVELS / (LEVELS - dropped(p));
    }

    private static int dropped(double p) {
        return (int) Math.min(Math.round(p * LEVELS), LEVELS - 1); // of LEVELS; capped so the scale stays finite
    }

    /** The keep mask (1 kept, 0 dropped) in x's shape and dtype for a seed. */
    public static Tensor mask(Tensor x, double p, long seed) {
        Tensor mask = torch.ones(x.sizes(), new TensorOptions(x.scalar_type()));
        zeroDropped(p, seed, mask);
        return mask;
    }

    /**
     * Zeroes, in place, the elements that the mask of this seed drops, in each tensor (all of one shape, contiguous, on
     * the CPU, bf16 or fp32): one draw serves them all.
     */
    public static void zeroDropped(double p, long seed, Tensor... ts) {
        try (var s = new org.bytedeco.javacpp.PointerScope()) {
            zeroAt(droppedAt(ts[0].numel(), p, seed), ts);
        }
    }

    private static final long GAMMA = 0x9e3779b97f4a7c15L; // SplitMix64's increment (the golden ratio in 64 bits)

    /** SplitMix64's output function: a bijective mix of a 64-bit counter, statistically independent outputs for consecutive inputs. */
    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /**
     * The flat indices, ascending, of the elements among {@code n} that this seed's mask drops: a 1-D int32 tensor (a
     * temporary of the caller's scope). Element i compares bits 16·(i mod 4) … of mix64(seed + (i/4 + 1)·γ) with p·2¹⁶.
     */
    public static Tensor droppedAt(long n, double p, long seed) {
        if (n > Integer.MAX_VALUE) throw new IllegalStateException("dropout over " + n + " elements: at most 2³¹ − 1 in one tensor");
        int threshold = dropped(p);
        Scratch sc = SCRATCH.get();
        int c = 0;
        for (long start = 0; start < n; start += BLOCK) {
            int from = (int) start, end = (int) Math.min(n, start + BLOCK);
            sc.room((long) c + (end - from) + 64);                       // every element dropped, and the fast path's slack
            int fast = threshold <= LEVELS / 2 ? (end - from) & ~63 : 0; // whole groups of 64; the flags need p ≤ 1/2
            if (fast > 0) c = drawGroups(from, from + fast, seed, threshold, sc.words, sc.out, c);
            c = drawEach(from + fast, end, seed, threshold, sc.out, c);
        }
        Tensor indices = torch.zeros(new long[]{c}, new TensorOptions(torch.ScalarType.Int));
        if (c > 0) MemorySegment.copy(sc.out, 0, MemorySegment.ofAddress(indices.data_ptr().address()).reinterpret(4L * c), ValueLayout.JAVA_INT, 0, c);
        return indices;
    }

    /**
     * A thread's draw buffers, kept: allocating them per draw made 115 MiB of Java garbage a SmolLM2-135M step, and G1's
     * young generation grew to hold it (~200 MiB committed for 6 MiB live).
     */
    private static final class Scratch {
        final long[] words = new long[BLOCK / 4];
        int[] out = new int[BLOCK + 64];

        void room(long n) {
            if (out.length < n) out = java.util.Arrays.copyOf(out, (int) Math.min(Integer.MAX_VALUE - 8, Math.max(n, out.length + (long) out.length / 2)));
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** Element by element, [start, end) (start a multiple of 4), appending the dropped indices to out from c; the new count. */
    private static int drawEach(int start, int end, long seed, int threshold, int[] out, int c) {
        for (int i = start; i < end; i += 4) {
            long bits = mix64(seed + ((i >>> 2) + 1L) * GAMMA);
            // branch-free: the index is written every time and kept (c advances) only when its 16 bits are below the threshold
            for (int k = 0; k < 4 && i + k < end; k++, bits >>>= 16) {
                out[c] = i + k;
                c += ((int) (bits & 0xFFFF) - threshold) >>> 31;
            }
        }
        return c;
    }

    private static final long[] COUNTERS = new long[BLOCK / 4]; // (j + 1)·γ: the hash inputs of a block, less its offset
    private static final long FIELD_TOPS = 0x8000800080008000L, FIELD_ONES = 0x0001000100010001L;
    private static final long GATHER = 1L | 1L << 15 | 1L << 30 | 1L << 45; // moves bits 0, 16, 32, 48 to 45 … 48

    static {
        for (int j = 0; j < COUNTERS.length; j++) COUNTERS[j] = (j + 1L) * GAMMA;
    }

    /**
     * The same draw as {@link #drawEach} over [start, end), a whole number of 64-element groups within one block, appending
     * to out from c, 6× faster (0.17 vs 1.07 ns an element: the element loop was a tenth of a SmolLM2-135M step, and the
     * other core idled through it). Three loops
     * over a block's words that the JIT vectorizes (the hashes; per 16-bit field a "below the threshold" flag, exact
     * because each field's top bit is set before subtracting, so no borrow crosses fields, which needs the threshold at
     * most 2¹⁵; the four flags of a word gathered into a nibble), then per group of 64 elements a 64-bit map whose set
     * bits are written without a data-dependent branch: six indices unconditionally (more only when over six are set, 4 %
     * of groups at p = 0.05), the count advancing by the map's popcount.
     */
    private static int drawGroups(int start, int end, long seed, int threshold, long[] words, int[] out, int c) {
        int m = (end - start) >>> 2;
        long offset = seed + (long) (start >>> 2) * GAMMA, below = FIELD_ONES * threshold;
        for (int j = 0; j < m; j++) words[j] = mix64(offset + COUNTERS[j]);
        for (int j = 0; j < m; j++) {
            long z = words[j];
            words[j] = (~((z | FIELD_TOPS) - below) & ~z & FIELD_TOPS) >>> 15; // bit 16k set: field k is below the threshold
        }
        for (int j = 0; j < m; j++) words[j] = (words[j] * GATHER) >>> 45 & 0xF; // the four flags as bits 0 … 3
        for (int j = 0; j < m; j += 16) {
            long map = 0;
            for (int q = 0; q < 16; q++) map |= words[j + q] << (4 * q);
            int base = start + 4 * j, count = Long.bitCount(map), k = c;
            for (int u = 0; u < 6; u++, map &= map - 1) out[k + u] = base + Long.numberOfTrailingZeros(map);
            for (k += 6; map != 0; map &= map - 1) out[k++] = base + Long.numberOfTrailingZeros(map);
            c += count;
        }
        return c;
    }

    /** Zeroes, in place, the elements at these flat indices ({@link #droppedAt}) of each tensor (contiguous, CPU, bf16 or fp32). */
    public static void zeroAt(Tensor indices, Tensor... ts) {
        long count = indices.numel();
        if (count == 0) return;
        MemorySegment ix = MemorySegment.ofAddress(indices.data_ptr().address()).reinterpret(4 * count);
        for (Tensor t : ts) {
            if (!t.is_contiguous()) throw new IllegalStateException("zeroAt: contiguous tensors only");
            boolean bf16 = t.scalar_type().intern() == torch.ScalarType.BFloat16;
            long n = t.numel();
            MemorySegment seg = MemorySegment.ofAddress(t.data_ptr().address()).reinterpret(n * (bf16 ? 2 : 4));
            if (bf16) for (long k = 0; k < count; k++) seg.set(ValueLayout.JAVA_SHORT, 2L * ix.getAtIndex(ValueLayout.JAVA_INT, k), (short) 0);
            else for (long k = 0; k < count; k++) seg.set(ValueLayout.JAVA_FLOAT, 4L * ix.getAtIndex(ValueLayout.JAVA_INT, k), 0f);
        }
    }
}
