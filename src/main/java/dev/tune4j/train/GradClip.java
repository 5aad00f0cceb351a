package dev.tune4j.train;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;
import java.util.function.DoubleUnaryOperator;

/** torch.nn.utils.clip_grad_norm_: total 2-norm over all gradients, then every gradient × min(1, max / (norm + 1e-6)). */
public final class GradClip {
    private GradClip() {}

    /** @return the total norm before clipping */
    public static double clip(List<Tensor> params, double maxNorm) {
        return clip(params, maxNorm, null);
    }

    /**
     * @param sumSquares with gradients spread over processes (ZeRO 2): this process's squared norm → the sum over all of
     *                   them (every process calls it, even with no gradients); null when this process holds them all
     */
    public static double clip(List<Tensor> params, double maxNorm, DoubleUnaryOperator sumSquares) {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            var grads = new ArrayList<Tensor>();
            for (Tensor p : params) if (p.grad().defined()) grads.add(p.grad());
            if (grads.isEmpty() && sumSquares == null) return 0;
            var norms = new TensorVector();
            for (Tensor g : grads) norms.push_back(g.norm());
            Tensor total = grads.isEmpty() ? torch.zeros(1) : torch.stack(norms).norm();      // ||(||g_i||)||_2 in fp32
            if (sumSquares != null) {
                double local = total.item_double(), global = Math.sqrt(sumSquares.applyAsDouble(local * local));
                double coef = Math.min(1.0, maxNorm / (global + 1e-6));
                for (Tensor g : grads) g.mul_(new Scalar(coef));
                return global;
            }
            Tensor coef = total.add(new Scalar(1e-6)).reciprocal().mul(new Scalar(maxNorm)).clamp_max(new Scalar(1.0));
            for (Tensor g : grads) g.mul_(coef);
            return total.item_double();
        }
    }
}
