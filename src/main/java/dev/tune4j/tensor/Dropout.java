package dev.tune4j.tensor;

import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * Inverted dropout (train mode): x · keep / (1 − p). libtorch's CPU dropout draws every element from its one serial
 * mt19937 generator (its vectorized path needs an Intel CPU with MKL) and keeps 4-byte fp32 noise for the backward:
 * LoRA dropout on every projection input took 40 % of a SmolLM2-135M step (447 → 258 tokens/s). Here one draw from
 * libtorch's generator seeds a SplittableRandom, split once per block of 2¹⁶ elements (independent streams), and the
 * blocks are drawn on every core; each element compares 16 random bits (four from one 64-bit draw) with p·2¹⁶: the same
 * elements dropped for the same seed on any number of threads, a drop probability of p rounded to a multiple of 2⁻¹⁶,
 * and a scale from that same value, so the expectation is exact. A mask is a function of its seed alone, so it can be
 * drawn again instead of kept: {@link #zeroDropped} zeroes the dropped elements of tensors in place (peft/RedrawnDropout
 * draws LoRA's masks again in backward). Where autograd needs a mask ({@link #keep}), it is in x's dtype (2 bytes an
 * element in bf16): libtorch's multiply by a bool mask is ~15× slower (fwd + bwd of a 1024 × 576 bf16 input: 1.07 vs
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
        if (!redrawable(x)) return new Kept(torch.native_dropout(x, p, new BoolOptional(true)).get0(), 1);
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
        Tensor kept = x.contiguous().clone();
        var all = new Tensor[alsoZeroed.length + 1];
        all[0] = kept;
        System.arraycopy(alsoZeroed, 0, all, 1, alsoZeroed.length);
        zeroDropped(p, seed, all);
        return kept;
    }

    /** Whether {@link #mask} and {@link #zeroDropped} serve x (CPU, bf16 or fp32): its masks can be drawn again from their seed. */
    public static boolean redrawable(Tensor x) {
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
     * the CPU, bf16 or fp32): one pass over the random bits serves them all.
     */
    public static void zeroDropped(double p, long seed, Tensor... ts) {
        long n = ts[0].numel();
        var segments = new MemorySegment[ts.length];
        var bf16 = new boolean[ts.length];
        for (int t = 0; t < ts.length; t++) {
            if (ts[t].numel() != n || !ts[t].is_contiguous()) throw new IllegalStateException("zeroDropped: tensors of one shape, contiguous");
            bf16[t] = ts[t].scalar_type().intern() == torch.ScalarType.BFloat16;
            segments[t] = MemorySegment.ofAddress(ts[t].data_ptr().address()).reinterpret(n * (bf16[t] ? 2 : 4));
        }
        int threshold = dropped(p); // dropped when 16 random bits < threshold
        var blocks = new SplittableRandom[(int) ((n + BLOCK - 1) / BLOCK)];
        var root = new SplittableRandom(seed);
        for (int b = 0; b < blocks.length; b++) blocks[b] = root.split(); // independent streams (not shifted copies of one)
        IntStream.range(0, blocks.length).parallel().forEach(b -> {
            var rnd = blocks[b];
            long bits = 0;
            for (long i = (long) b * BLOCK, end = Math.min(n, i + BLOCK), k = 0; i < end; i++, k++) {
                if ((k & 3) == 0) bits = rnd.nextLong();
                if ((int) (bits & 0xFFFF) < threshold)
                    for (int t = 0; t < segments.length; t++) {
                        if (bf16[t]) segments[t].set(ValueLayout.JAVA_SHORT, 2 * i, (short) 0);
                        else segments[t].set(ValueLayout.JAVA_FLOAT, 4 * i, 0f);
                    }
                bits >>>= 16;
            }
        });
    }
}
