package dev.tune4j.model;

import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/** RMSNorm: x / sqrt(mean(x²) + eps) · weight, normalised in fp32 as HF's LlamaRMSNorm does. */
public final class RmsNorm {
    public final Tensor weight; // (C)
    final double eps;

    RmsNorm(Tensor weight, double eps) {
        this.weight = weight;
        this.eps = eps;
    }

    public Tensor forward(Tensor x) {
        var dtype = x.scalar_type().intern(); // JavaCPP returns a fresh enum instance: intern() before comparing
        if (dtype == torch.ScalarType.Float)
            return torch.rms_norm(x, new long[]{weight.size(0)}, new TensorOptional(weight), new DoubleOptional(eps));
        // bf16: HF upcasts, normalises, casts back, then multiplies by the (bf16) weight
        Tensor h = torch.rms_norm(x.to(torch.ScalarType.Float), new long[]{weight.size(0)}, new TensorOptional(), new DoubleOptional(eps));
        return h.to(dtype).mul(weight);
    }
}
