package dev.tune4j.model;

import dev.tune4j.hf.ModelConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * Rotary position embedding exactly as transformers' Llama: inverse frequencies θ^(-2i/d) in fp32, angles = position ·
 * inv_freq, duplicated over both halves of the head (not interleaved), applied with rotate_half. Scaling types linear,
 * dynamic (NTK) and llama3 change only the inverse frequencies.
 */
public final class Rope implements AutoCloseable {
    final int headDim;
    final ModelConfig.RopeScaling scaling;
    final double theta;
    final int maxPositions;
    final Compute compute;
    final Tensor invFreq; // (hd/2) fp32 on the compute device

    public Rope(ModelConfig c, Compute compute) {
        this.headDim = c.headDim();
        this.scaling = c.ropeScaling();
        this.theta = c.ropeTheta();
        this.maxPositions = c.maxPositionEmbeddings();
        this.compute = compute;
        this.invFreq = Tensors.escape(() -> {
            float[] f = Tensors.toFloats(defaultInvFreq(theta));
            switch (scaling.type()) {
                case "linear" -> { for (int i = 0; i < f.length; i++) f[i] = (float) (f[i] / scaling.factor()); }
                case "llama3" -> llama3(f, scaling);
                default -> {}
            }
            return onDevice(Tensors.floats(f, f.length));
        });
    }

    private Tensor onDevice(Tensor hostFloat) {
        return compute.cuda() ? hostFloat.to(compute.device(), torch.ScalarType.Float) : hostFloat;
    }

    /** 1 / base^(arange(0, d, 2) / d), computed with fp32 tensor ops in the same order as transformers. */
    private Tensor defaultInvFreq(double base) {
        Tensor exponent = torch.arange(new Scalar(0), new Scalar(headDim), new Scalar(2)).to(torch.ScalarType.Float).div(new Scalar((long) headDim));
        return torch.pow(new Scalar(base), exponent).reciprocal();
    }

    /** Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend between. */
    static void llama3(float[] f, ModelConfig.RopeScaling s) {
        double old = s.originalMaxPositionEmbeddings();
        double lowWavelen = old / s.lowFreqFactor(), highWavelen = old / s.highFreqFactor();
        for (int i = 0; i < f.length; i++) {
            double freq = f[i], wavelen = 2 * Math.PI / freq;
            if (wavelen < highWavelen) continue;
            if (wavelen > lowWavelen) f[i] = (float) (freq / s.factor());
            else {
                double smooth = (old / wavelen - s.lowFreqFactor()) / (s.highFreqFactor() - s.lowFreqFactor());
                f[i] = (float) ((1 - smooth) * freq / s.factor() + smooth * freq);
            }
        }
    }

    /** cos and sin for positions (B, T): each (B, 1, T, hd) in the activation dtype, ready to broadcast over heads. */
    public Tensor[] cosSin(Tensor positionIds, long maxPosition) {
        Tensor inv = invFreq;
        if (scaling.type().equals("dynamic") && maxPosition + 1 > maxPositions) {
            // NTK-aware: stretch the base so the longest position maps inside the trained range
            double seqLen = maxPosition + 1;
            double base = theta * Math.pow(scaling.factor() * seqLen / maxPositions - (scaling.factor() - 1), headDim / (headDim - 2.0));
            inv = onDevice(defaultInvFreq(base));
        }
        Tensor freqs = positionIds.to(torch.ScalarType.Float).unsqueeze(-1).mul(inv); // (B, T, hd/2)
        Tensor emb = torch.cat(new TensorVector(freqs, freqs), -1);                  // (B, T, hd)
        Tensor cos = emb.cos().unsqueeze(1).to(compute.dtype());                      // (B, 1, T, hd)
        Tensor sin = emb.sin().unsqueeze(1).to(compute.dtype());
        return new Tensor[]{cos, sin};
    }

    /** x·cos + rotate_half(x)·sin, with rotate_half(x) = [-x₂, x₁]. x is (B, heads, T, hd). */
    public static Tensor apply(Tensor x, Tensor cos, Tensor sin) {
        long half = x.size(-1) / 2;
        Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
        Tensor rotated = torch.cat(new TensorVector(x2.neg(), x1), -1);
        return x.mul(cos).add(rotated.mul(sin));
    }

    @Override
    public void close() {
        invFreq.close();
    }
}
