package dev.tune4j.model;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/** Next-token cross-entropy as transformers computes it: logits at t predict labels at t+1, labels −100 are ignored. */
public final class CausalLmLoss {
    private CausalLmLoss() {}

    public static final long IGNORE = -100;

    /** Sum of the token losses and the number of predicted tokens, so chunked callers can combine exactly. */
    public record Sum(double total, long count) {
        public double mean() {
            return total / count;
        }
    }

    /** Mean next-token loss as a tensor (for backward): logits (B, T, V), labels (B, T). */
    public static Tensor mean(Tensor logits, Tensor labels) {
        long b = logits.size(0), t = logits.size(1), v = logits.size(2);
        Tensor shiftLogits = logits.narrow(1, 0, t - 1).reshape(b * (t - 1), v);   // (B·(T−1), V)
        Tensor shiftLabels = labels.narrow(1, 1, t - 1).reshape(b * (t - 1));      // (B·(T−1))
        // reduction 1 = mean over labels != IGNORE
        return torch.cross_entropy_loss(shiftLogits.to(torch.ScalarType.Float), shiftLabels, new TensorOptional(), 1, IGNORE, 0.0);
    }

    /** logits (B, T, V), labels (B, T) → sum over supervised tokens. */
    public static Sum sum(Tensor logits, Tensor labels) {
        long b = logits.size(0), t = logits.size(1), v = logits.size(2);
        Tensor shiftLogits = logits.narrow(1, 0, t - 1).reshape(b * (t - 1), v);   // (B·(T−1), V)
        Tensor shiftLabels = labels.narrow(1, 1, t - 1).reshape(b * (t - 1));      // (B·(T−1))
        long count = shiftLabels.ne(new org.bytedeco.pytorch.Scalar(IGNORE)).sum().item_long();
        // reduction 2 = sum (at::Reduction::Sum)
        double total = torch.cross_entropy_loss(shiftLogits.to(torch.ScalarType.Float), shiftLabels, new TensorOptional(), 2, IGNORE, 0.0).item_double();
        return new Sum(total, count);
    }
}
