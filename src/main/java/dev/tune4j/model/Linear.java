package dev.tune4j.model;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/**
 * y = x Wᵀ + b, with W stored (out, in) as in every HF checkpoint. {@code bias} may be null. Attached {@link Adapter}s
 * (LoRA) add their own terms to the output: y = x Wᵀ + b + Σ adapter(x).
 */
public final class Linear {
    /** A trainable addition to a frozen projection; implemented by the peft package. */
    public interface Adapter {
        Tensor delta(Tensor x); // (…, in) → (…, out)
    }

    public final Tensor weight; // (out, in)
    public final Tensor bias;   // (out) or null
    public final java.util.List<Adapter> adapters = new java.util.ArrayList<>(1); // empty = plain projection

    public Linear(Tensor weight, Tensor bias) {
        this.weight = weight;
        this.bias = bias;
    }

    public Tensor forward(Tensor x) {
        Tensor y = bias == null ? torch.linear(x, weight) : torch.linear(x, weight, new TensorOptional(bias));
        for (Adapter a : adapters) y = y.add(a.delta(x));
        return y;
    }

    public long inFeatures() {
        return weight.size(1);
    }

    public long outFeatures() {
        return weight.size(0);
    }

    void close() {
        weight.close();
        if (bias != null) bias.close();
    }
}
