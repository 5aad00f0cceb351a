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
 * libtorch's generator seeds a SplittableRandom, split once per block of 2¹⁶ elements (independent streams), the blocks
 * are filled on every core, and each
 * element compares 32 random bits with p·2³²: the same masks for the same seed on any number of threads, a drop
 * probability of p rounded to a multiple of 2⁻³², and a scale from that same value, so the expectation is exact. The
 * mask is in x's dtype (2 bytes an element in bf16): libtorch's multiply by a bool mask is ~15× slower (fwd + bwd of a
 * 1024 × 576 bf16 input: 1.07 vs 0.07 ms). CUDA and other dtypes use libtorch's own dropout.
 */
public final class Dropout {
    private Dropout() {}

    private static final int BLOCK = 1 << 16;

    /** x with dropped elements zeroed, and the factor 1/(1 − p) still to apply (a linear consumer folds it into its own scale). */
    public record Kept(Tensor x, double scale) {}

    public static Tensor apply(Tensor x, double p) {
        Kept k = keep(x, p);
        return k.scale == 1 ? k.x : k.x.mul(new Scalar(k.scale));
    }

    public static Kept keep(Tensor x, double p) {
        if (p <= 0) return new Kept(x, 1);
        var dtype = x.scalar_type().intern();
        boolean bf16 = dtype == torch.ScalarType.BFloat16;
        if (x.is_cuda() || !(bf16 || dtype == torch.ScalarType.Float)) return new Kept(torch.native_dropout(x, p, new BoolOptional(true)).get0(), 1);
        long n = x.numel(), drop = Math.min(Math.round(p * 4294967296.0), 4294967295L); // dropped among 2³² values
        long seed = torch.randint(Long.MIN_VALUE, Long.MAX_VALUE, new long[]{1}, new TensorOptions(torch.ScalarType.Long)).item_long();
        Tensor mask = torch.empty(x.sizes(), new TensorOptions(dtype), new MemoryFormatOptional());
        MemorySegment m = MemorySegment.ofAddress(mask.data_ptr().address()).reinterpret(n * (bf16 ? 2 : 4));
        int threshold = (int) drop; // unsigned: keep when 32 random bits ≥ drop
        var blocks = new SplittableRandom[(int) ((n + BLOCK - 1) / BLOCK)];
        var root = new SplittableRandom(seed);
        for (int b = 0; b < blocks.length; b++) blocks[b] = root.split(); // independent streams (not shifted copies of one)
        IntStream.range(0, blocks.length).parallel().forEach(b -> {
            var rnd = blocks[b];
            for (long i = (long) b * BLOCK, end = Math.min(n, i + BLOCK); i < end; i++) {
                boolean keep = Integer.compareUnsigned(rnd.nextInt(), threshold) >= 0;
                if (bf16) m.set(ValueLayout.JAVA_SHORT, 2 * i, keep ? (short) 0x3F80 : 0); // bf16 1.0 or 0
                else m.set(ValueLayout.JAVA_FLOAT, 4 * i, keep ? 1f : 0f);
            }
        });
        return new Kept(x.mul(mask), 4294967296.0 / (4294967296.0 - drop));
    }
}
