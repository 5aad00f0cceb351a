package dev.tune4j.model;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/** y = x Wᵀ + b, with W stored (out, in) as in every HF checkpoint. {@code bias} may be null. */
public final class Linear {
    public final Tensor weight; // (out, in)
    public final Tensor bias;   // (out) or null

    public Linear(Tensor weight, Tensor bias) {
        this.weight = weight;
        this.bias = bias;
    }

    public Tensor forward(Tensor x) {
        return bias == null ? torch.linear(x, weight) : torch.linear(x, weight, new TensorOptional(bias));
    }

    void close() {
        weight.close();
        if (bias != null) bias.close();
    }
}
