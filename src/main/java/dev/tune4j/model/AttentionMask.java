package dev.tune4j.model;

import dev.tune4j.tensor.Compute;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Which keys each query may see, as the additive mask scaled_dot_product_attention takes. Query t of this step sits at
 * cache index past+t; key j is visible iff j ≤ past+t (causal), the key is not padding, and, with a sliding window W,
 * past+t − j < W. Hidden keys get the dtype's lowest value, as transformers does, so a query whose keys are all padding
 * gets a uniform (finite) row instead of NaN.
 *
 * @return (B, 1, T, S) mask, or null when plain causal attention (is_causal) or no mask at all is exact
 */
public final class AttentionMask {
    private AttentionMask() {}

    public record Plan(Tensor mask, boolean causal) {}

    /**
     * Packed rows: query i sees key j iff j ≤ i and both belong to the same example (segment ids equal and not 0), so
     * no attention crosses examples (a block-diagonal causal mask).
     */
    static Plan packed(Tensor segments, Compute compute) {
        long b = segments.size(0), t = segments.size(1);
        Tensor seg = segments.cpu();
        Tensor causal = torch.arange(new Scalar(0), new Scalar(t)).view(1, t).le(torch.arange(new Scalar(0), new Scalar(t)).view(t, 1)); // (T, T)
        Tensor same = seg.view(b, 1, t, 1).eq(seg.view(b, 1, 1, t)).logical_and(seg.view(b, 1, 1, t).ne(new Scalar(0)));        // (B, 1, T, T)
        Tensor allowed = same.logical_and(causal.view(1, 1, t, t));
        if (compute.cuda()) allowed = allowed.to(compute.device(), torch.ScalarType.Bool);
        double lowest = compute.bf16() ? -3.3895313892515355e38 : -Float.MAX_VALUE;
        return new Plan(torch.where(allowed, new Scalar(0.0), new Scalar(lowest)).to(compute.dtype()), false);
    }

    static Plan build(Tensor keyPadding, long past, long t, int window, Compute compute) {
        long s = past + t;
        boolean windowBites = window > 0 && s > window;
        if (keyPadding == null && !windowBites) {
            if (past == 0) return new Plan(null, t > 1);   // the fast fused causal kernel
            if (t == 1) return new Plan(null, false);      // one new token sees every cached key
        }
        Tensor qi = torch.arange(new Scalar(past), new Scalar(s)).view(t, 1);   // (T, 1) cache index of each query
        Tensor kj = torch.arange(new Scalar(0), new Scalar(s)).view(1, s);      // (1, S)
        Tensor allowed = kj.le(qi);                                              // (T, S) causal
        if (windowBites) allowed = allowed.logical_and(qi.sub(kj).lt(new Scalar(window)));
        allowed = allowed.view(1, 1, t, s);
        if (keyPadding != null) {
            long b = keyPadding.size(0);
            allowed = allowed.logical_and(keyPadding.narrow(1, 0, s).to(torch.ScalarType.Bool).cpu().view(b, 1, 1, s)); // (B, 1, T, S)
        }
        if (compute.cuda()) allowed = allowed.to(compute.device(), torch.ScalarType.Bool);
        double lowest = compute.bf16() ? -3.3895313892515355e38 : -Float.MAX_VALUE; // finfo(dtype).min
        return new Plan(torch.where(allowed, new Scalar(0.0), new Scalar(lowest)).to(compute.dtype()), false);
    }
}
