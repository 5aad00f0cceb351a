package dev.tune4j.tensor;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** Inverted dropout with masks drawn from one seed: PEFT's lora_dropout semantics, reproducible from torch's seed. */
class DropoutTest {
    /** Share kept, the 1/(1 − p) scale, zeros where dropped, in fp32 and bf16, on a size that is no multiple of the block. */
    @Test
    void keepsOneMinusPAndScalesTheRest() {
        for (var dtype : new torch.ScalarType[]{torch.ScalarType.Float, torch.ScalarType.BFloat16})
            try (PointerScope s = new PointerScope()) {
                long n = 3 * (1 << 16) + 7;
                Tensor x = torch.ones(n).to(dtype);
                torch.manual_seed(5);
                Tensor y = Dropout.apply(x, 0.2).to(torch.ScalarType.Float);
                double kept = y.ne(new Scalar(0)).sum().item_double() / n;
                assertThat(kept).as("share kept, " + dtype).isCloseTo(0.8, within(0.005));
                assertThat(y.max().item_double()).as("kept values are 1/(1 − p)").isCloseTo(1.25, within(dtype == torch.ScalarType.Float ? 1e-5 : 0.01)); // p rounded to 2⁻¹⁶
                assertThat(y.mean().item_double()).as("the expectation is kept").isCloseTo(1.0, within(0.01));
                // every block is used: no stretch of the last (partial) block or of any other is left unfilled
                assertThat(y.narrow(0, n - 7, 7).ne(new Scalar(0)).sum().item_long()).isPositive();
            }
    }

    /** The same seed gives the same mask; another seed another; the gradient is mask · scale. */
    @Test
    void reproducibleFromTheSeedAndDifferentiable() {
        try (PointerScope s = new PointerScope()) {
            Tensor x = torch.randn(1000, 300);
            x.set_requires_grad(true);
            torch.manual_seed(11);
            Tensor a = Dropout.apply(x, 0.5);
            torch.manual_seed(11);
            Tensor b = Dropout.apply(x, 0.5);
            Tensor c = Dropout.apply(x, 0.5);
            assertThat(a.eq(b).all().item_bool()).isTrue();
            assertThat(a.eq(c).all().item_bool()).isFalse();
            a.sum().backward();
            Tensor want = a.detach().ne(new Scalar(0)).to(torch.ScalarType.Float).mul(new Scalar(2.0)); // where kept: d/dx = 1/(1 − p)
            assertThat(x.grad().sub(want).abs().max().item_double()).isLessThan(1e-6);
        }
    }

    /** No stretch of a mask repeats another shifted by about a block (2¹⁶ elements: the draw's unit of work). */
    @Test
    void blocksAreIndependent() {
        try (PointerScope s = new PointerScope()) {
            int block = 1 << 16;
            torch.manual_seed(3);
            Tensor y = Dropout.apply(torch.ones(4L * block), 0.5);
            for (int shift : new int[]{block - 1, block, block + 1}) {
                double same = y.narrow(0, 0, 2L * block).eq(y.narrow(0, shift, 2L * block)).to(torch.ScalarType.Float).mean().item_double();
                assertThat(same).as("agreement with the mask shifted by " + shift).isCloseTo(0.5, within(0.01));
            }
        }
    }

    /**
     * zeroDropped and the kept indices zero in every tensor they are given exactly the elements the mask of the same seed
     * drops; the indices are ascending and distinct.
     */
    @Test
    void zeroDroppedAndTheIndicesMatchTheMask() {
        try (PointerScope s = new PointerScope()) {
            Tensor mask = Dropout.mask(torch.ones(3, 70_001), 0.3, 12345);
            Tensor a = torch.randn(3, 70_001).add(new Scalar(10)), b = a.to(torch.ScalarType.BFloat16), c = a.clone();
            Dropout.zeroDropped(0.3, 12345, a, b);
            assertThat(a.ne(new Scalar(0)).to(torch.ScalarType.Float).equal(mask)).isTrue();
            assertThat(b.ne(new Scalar(0)).to(torch.ScalarType.Float).equal(mask)).isTrue();
            assertThat(mask.mean().item_double()).isCloseTo(0.7, within(0.005));
            Tensor at = Dropout.droppedAt(c.numel(), 0.3, 12345);
            assertThat(at.numel()).isEqualTo(mask.eq(new Scalar(0)).sum().item_long());
            Tensor d = Dropout.dropped(c, at);
            assertThat(d.ne(new Scalar(0)).to(torch.ScalarType.Float).equal(mask)).isTrue();
            assertThat(c.ne(new Scalar(0)).all().item_bool()).as("dropped copies: x itself untouched").isTrue();
            Tensor l = at.to(torch.ScalarType.Long);
            assertThat(l.narrow(0, 1, l.numel() - 1).gt(l.narrow(0, 0, l.numel() - 1)).all().item_bool()).as("ascending").isTrue();
        }
    }

    /**
     * The draw is the documented function of the seed, element by element (recomputed here from the definition), on the
     * fast path (whole groups of 64 at p ≤ ½), its element-by-element tail, past a block boundary, and above p = ½.
     */
    @Test
    void theDrawIsTheDocumentedFunctionOfTheSeed() {
        for (double p : new double[]{0.001, 0.05, 0.3, 0.5, 0.7})
            for (long n : new long[]{1, 63, 64, 1000, 65_536 + 200})
                for (long seed : new long[]{0, 12345, -7}) {
                    int threshold = (int) Math.round(p * 65536);
                    var want = new java.util.ArrayList<Integer>();
                    for (int i = 0; i < n; i++) {
                        long z = seed + ((i >>> 2) + 1L) * 0x9e3779b97f4a7c15L; // SplitMix64 over the counter i/4
                        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
                        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
                        z ^= z >>> 31;
                        if ((z >>> (16 * (i & 3)) & 0xFFFF) < threshold) want.add(i);
                    }
                    try (PointerScope s = new PointerScope()) {
                        Tensor at = Dropout.droppedAt(n, p, seed);
                        int[] got = new int[(int) at.numel()];
                        if (got.length > 0) at.data_ptr_int().get(got);
                        assertThat(got).as("p %s, n %d, seed %d", p, n, seed).containsExactly(want.stream().mapToInt(Integer::intValue).toArray());
                    }
                }
    }

    /** Even a p a hair below 1 keeps the scale finite (the drop count is capped below 2¹⁶). */
    @Test
    void aPJustBelowOneStaysFinite() {
        try (PointerScope s = new PointerScope()) {
            var k = Dropout.keep(torch.ones(1000), 0.99999999999);
            assertThat(k.scale()).isFinite();
            assertThat(k.x().sum().item_double()).isZero();
        }
    }

    /** p = 0 is the identity (no draw, no copy); p is rounded to a multiple of 2⁻¹⁶ and the scale uses the same value. */
    @Test
    void zeroIsIdentityAndScaleMatchesTheRoundedP() {
        try (PointerScope s = new PointerScope()) {
            Tensor x = torch.randn(10);
            assertThat(Dropout.apply(x, 0).equal(x)).isTrue();
            var k = Dropout.keep(x, 0.05);
            double pRounded = Math.round(0.05 * 65536) / 65536.0;
            assertThat(k.scale()).isCloseTo(1 / (1 - pRounded), within(1e-12));
            assertThat(k.scale()).isCloseTo(1 / 0.95, within(1e-5));
        }
    }
}
