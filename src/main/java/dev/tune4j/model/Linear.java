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

    /** A frozen weight kept compressed (QLoRA): rebuilt in the compute dtype for each use, never stored dense. */
    public interface Quantized extends AutoCloseable {
        Tensor dequantize();  // (out, in), a temporary of the caller's scope

        long[] shape();       // (out, in)

        long bytes();         // what the compressed weight occupies

        @Override
        void close();
    }

    public Tensor weight;       // (out, in); null once quantized
    public Quantized quantized; // non-null for a quantized (frozen) weight
    public final Tensor bias;   // (out) or null
    public final java.util.List<Adapter> adapters = new java.util.ArrayList<>(1); // empty = plain projection

    public Linear(Tensor weight, Tensor bias) {
        this.weight = weight;
        this.bias = bias;
    }

    public Tensor forward(Tensor x) {
        Tensor w = quantized != null ? quantized.dequantize() : weight;
        Tensor y = bias == null ? torch.linear(x, w) : torch.linear(x, w, new TensorOptional(bias));
        for (Adapter a : adapters) y = y.add(a.delta(x));
        return y;
    }

    public long inFeatures() {
        return quantized != null ? quantized.shape()[1] : weight.size(1);
    }

    public long outFeatures() {
        return quantized != null ? quantized.shape()[0] : weight.size(0);
    }

    /** Replaces the dense weight by a compressed one and frees the dense tensor. */
    public void quantize(Quantized q) {
        if (weight != null) weight.close();
        weight = null;
        quantized = q;
    }

    void close() {
        if (weight != null) weight.close();
        if (quantized != null) quantized.close();
        if (bias != null) bias.close();
    }
}
