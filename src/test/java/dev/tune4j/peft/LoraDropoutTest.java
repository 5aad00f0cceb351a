package dev.tune4j.peft;

import dev.tune4j.tensor.Dropout;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * LoRA's dropout differentiated by hand (the mask drawn again in backward) gives what autograd gives with the mask kept:
 * the term, A's, B's and the input's gradients, in fp32 and in bf16 (the CPU bf16-matmul path), with and without a
 * gradient for the input; and it leaves nothing behind step after step.
 */
class LoraDropoutTest {
    @ParameterizedTest
    @CsvSource({"Float,true", "Float,false", "BFloat16,true", "BFloat16,false"})
    void gradientsEqualAutogradsWithTheMaskKept(String type, boolean inputGrad) {
        var dtype = torch.ScalarType.valueOf(type);
        boolean bf16 = dtype == torch.ScalarType.BFloat16;
        double p = 0.3, scaling = 2.0;
        long in = 24, out = 20, r = 4;
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(7);
            Tensor a = torch.randn(r, in).mul(new Scalar(0.3)), b = torch.randn(out, r).mul(new Scalar(0.3));
            Tensor w = torch.randn(out, in).to(dtype), x0 = torch.randn(2, 5, in).to(dtype), probe = torch.randn(2, 5, out).to(dtype);
            float[][] by = new float[2][], gradA = new float[2][], gradB = new float[2][], gradX = new float[2][];
            for (int run = 0; run < 2; run++) {
                Tensor la = a.clone(), lb = b.clone();
                la.set_requires_grad(true);
                lb.set_requires_grad(true);
                Tensor leaf = x0.clone();
                leaf.set_requires_grad(inputGrad);
                Tensor x = inputGrad ? leaf.mul(new Scalar(1)) : leaf; // a non-leaf input, as a projection's input is
                torch.manual_seed(99);
                Tensor delta;
                try (var l = new LoraLinear("default", la, lb, null, scaling, p)) {
                    l.train(true);
                    if (run == 0) delta = bf16 ? l.deltaBf16(x, null, null) : l.delta(x); // redrawn
                    else { // autograd with the same mask kept
                        Tensor mask;
                        try (var ng = new NoGradGuard()) {
                            mask = Dropout.mask(x, p, Dropout.seed());
                        }
                        delta = torch.linear(torch.linear(x.mul(mask), la.to(dtype)), lb.mul(new Scalar(scaling * Dropout.scale(p))).to(dtype));
                    }
                    Tensor y = torch.linear(x, w).add(delta); // the frozen base beside it, as in Linear
                    y.mul(probe).sum().backward();
                    by[run] = Tensors.toFloats(delta.detach().to(torch.ScalarType.Float));
                    gradA[run] = Tensors.toFloats(la.grad());
                    gradB[run] = Tensors.toFloats(lb.grad());
                    gradX[run] = inputGrad ? Tensors.toFloats(leaf.grad().to(torch.ScalarType.Float)) : new float[0];
                }
            }
            assertSame("the term", by[0], by[1]);
            assertSame("A's gradient", gradA[0], gradA[1]);
            assertSame("B's gradient", gradB[0], gradB[1]);
            assertSame("the input's gradient", gradX[0], gradX[1]);
            assertThat(gradA[0]).as("A learns").isNotEqualTo(new float[gradA[0].length]);
        }
    }

    /**
     * x's share reaches x's gradient only when x also feeds another node (Linear's base GEMM): an input that feeds the
     * term alone never gets a gradient, and the lost share is an error at the next forward, not a silent one.
     */
    @org.junit.jupiter.api.Test
    void aShareThatNeverReachedItsInputIsAnError() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(5);
            Tensor a = torch.randn(4, 24).mul(new Scalar(0.3)), b = torch.randn(20, 4).mul(new Scalar(0.3));
            a.set_requires_grad(true);
            b.set_requires_grad(true);
            Tensor leaf = torch.randn(2, 5, 24);
            leaf.set_requires_grad(true);
            try (var l = new LoraLinear("default", a, b, null, 2.0, 0.3)) {
                l.train(true);
                try (PointerScope step = new PointerScope()) { // the step's graph goes with its scope, as in training
                    l.delta(leaf.mul(new Scalar(1))).sum().backward(); // no base GEMM beside the term
                }
                assertThat(a.grad().defined()).isTrue();
                org.assertj.core.api.Assertions.assertThatThrownBy(() -> l.delta(leaf.mul(new Scalar(1))))
                        .isInstanceOf(IllegalStateException.class).hasMessageContaining("never added");
            }
        }
    }

    /**
     * Out of training and without gradients (evaluation, generation) the bf16 path uses kept bf16 copies of A and
     * scaling·B: the same term within bf16 rounding, and rebuilt when the adapter changes.
     */
    @org.junit.jupiter.api.Test
    void evaluationUsesBf16CopiesRebuiltWhenTheAdapterChanges() {
        try (PointerScope s = new PointerScope(); var ng = new NoGradGuard()) {
            torch.manual_seed(3);
            Tensor a = torch.randn(4, 24), b = torch.randn(20, 4), x = torch.randn(6, 24).to(torch.ScalarType.BFloat16);
            try (var l = new LoraLinear("default", a, b, null, 2.0, 0.1)) {
                Tensor want = torch.linear(torch.linear(x, a.to(torch.ScalarType.BFloat16)), b.to(torch.ScalarType.BFloat16)).mul(new Scalar(2.0));
                float[] got = Tensors.toFloats(l.deltaBf16(x, null, null).to(torch.ScalarType.Float)), w = Tensors.toFloats(want.to(torch.ScalarType.Float));
                for (int i = 0; i < got.length; i++) assertThat(Math.abs(got[i] - w[i])).as("element " + i).isLessThan(0.05f * Math.max(1, Math.abs(w[i])));
                b.mul_(new Scalar(-1)); // an update in place (the optimizer's way): the copies follow
                float[] flipped = Tensors.toFloats(l.deltaBf16(x, null, null).to(torch.ScalarType.Float));
                for (int i = 0; i < got.length; i++) assertThat(flipped[i]).isEqualTo(-got[i]);
            }
        }
    }

    /** Equal values (a dropped element may be +0 here where autograd's x·0 gives −0). */
    static void assertSame(String what, float[] got, float[] want) {
        assertThat(got).as(what).hasSameSizeAs(want);
        for (int i = 0; i < got.length; i++) assertThat(got[i] == want[i]).as(what + " [" + i + "]: " + got[i] + " vs " + want[i]).isTrue();
    }
}
