package dev.tune4j.train;

import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.*;
import org.bytedeco.pytorch.global.torch;

/**
 * The labelled-only chunked LM head. Logits exist only for positions whose next token is a target, and only
 * {@code chunk} of them at a time: the [tokens × vocab] matrix never exists, in training or in evaluation.
 *
 * <p>Every objective is a weighted sum of target log-probs as far as the head is concerned: token cross-entropy weighs
 * each position by −1/N; a sequence loss (DPO, ORPO, …) weighs position p by dL/dlogp of its sequence. So the head has
 * two calls: {@link #logps} (no graph: the per-position log-probs a sequence loss needs first) and {@link #backward}
 * (Σ w_p·logp_p back-propagated into the hidden states, chunk by chunk, each chunk's logits freed at once).
 */
public final class Head {
    private Head() {}

    /**
     * The positions one micro-batch trains on: flat index b·T+t of the hidden state that predicts {@code target} (the
     * label at t+1), which row it belongs to, and whether that label is part of the completion (ORPO's NLL also reads
     * prompt tokens; every other objective uses completion positions only).
     */
    public record Positions(long[] flat, long[] target, int[] row, boolean[] completion, int rows) {
        /** From host labels (B, T), −100 = none; {@code completion} (B, T) marks completion labels, null = every label. */
        public static Positions of(long[] labels, boolean[] completion, int b, int t) {
            int n = 0;
            for (int r = 0; r < b; r++) for (int i = 1; i < t; i++) if (labels[r * t + i] != -100) n++;
            long[] flat = new long[n], target = new long[n];
            int[] row = new int[n];
            boolean[] comp = new boolean[n];
            int k = 0;
            for (int r = 0; r < b; r++)
                for (int i = 1; i < t; i++) {
                    long y = labels[r * t + i];
                    if (y == -100) continue;
                    flat[k] = (long) r * t + i - 1;
                    target[k] = y;
                    row[k] = r;
                    comp[k++] = completion == null || completion[r * t + i];
                }
            return new Positions(flat, target, row, comp, b);
        }

        public int size() {
            return flat.length;
        }
    }

    /** Per-position log-prob of the target and the mean of that position's logits over the vocabulary (TRL's logits/* metrics). */
    public record Stats(float[] logp, float[] meanLogit) {}

    /** Log-probs of the targets, no graph (the caller may hold one on {@code h}: it is detached here). */
    public static Stats logps(LlamaModel m, Tensor h, Tensor target, int chunk) {
        long n = h.size(0);
        float[] logp = new float[(int) n], mean = new float[(int) n];
        try (NoGradGuard ng = new NoGradGuard()) {
            for (long s = 0; s < n; s += chunk) {
                long len = Math.min(chunk, n - s), s0 = s;
                try (PointerScope cs = new PointerScope()) {
                    Tensor z = Tensors.scoped(() -> m.logits(h.detach().narrow(0, s0, len)));                             // (len, V) fp32
                    float[] mu = Tensors.toFloats(z.mean(new long[]{1}, false, new ScalarTypeOptional()));
                    float[] c = Tensors.toFloats(logSoftmaxInPlace(z, target.narrow(0, s, len).unsqueeze(1)).squeeze(1)); // (len)
                    for (int i = 0; i < len; i++) {
                        logp[(int) s + i] = c[i];
                        mean[(int) s + i] = mu[i];
                    }
                }
            }
        }
        return new Stats(logp, mean);
    }

    /**
     * Σ_p w_p·logp_p for the positions of {@code h} (N, C), back-propagated into h; returns the sum. {@code weights} null
     * means every position weighs {@code uniform} (token cross-entropy: one fused call per chunk).
     */
    public static double backward(LlamaModel m, Tensor h, Tensor target, float[] weights, double uniform, int chunk) {
        if (!m.lm_head.requires_grad()) return backwardFrozen(m, h, target, weights, uniform, chunk);
        Tensor hd = h.detach().set_requires_grad(true);                                                         // (N, C) leaf
        long n = hd.size(0);
        double sum = 0;
        for (long s = 0; s < n; s += chunk) {
            long len = Math.min(chunk, n - s), start = s;
            try (PointerScope cs = new PointerScope()) {
                Tensor logits = m.logits(hd.narrow(0, start, len));                                             // (len, V) fp32
                Tensor t = target.narrow(0, start, len);
                Tensor weighted;                                                                                // Σ w·logp = −Σ w·CE
                if (weights == null) {
                    weighted = torch.cross_entropy_loss(logits, t, new TensorOptional(), 2, -100, 0.0).mul(new Scalar(-uniform));
                } else {
                    float[] w = java.util.Arrays.copyOfRange(weights, (int) start, (int) (start + len));
                    Tensor wt = m.compute.cuda() ? Tensors.floats(w, len).to(m.compute.device(), torch.ScalarType.Float) : Tensors.floats(w, len);
                    weighted = torch.cross_entropy_loss(logits, t, new TensorOptional(), 0, -100, 0.0).mul(wt).sum().neg();
                }
                sum += weighted.item_double();
                weighted.backward();
            }
        }
        h.backward(hd.grad(), new BoolOptional(), false, new TensorArrayRefOptional());
        return sum;
    }

    /**
     * The log-probs of the targets {@code at} (len, 1), turning the fp32 logits z into softmax(z) in place: no (len, V)
     * temporary (logsumexp and log-softmax each write one), so the logits are the chunk's only full-size tensor.
     */
    private static Tensor logSoftmaxInPlace(Tensor z, Tensor at) {
        z.sub_(z.amax(new long[]{1}, true));                                                                    // z − max
        Tensor picked = z.gather(1, at);                                                                        // (len, 1)
        Tensor sum = z.exp_().sum(new long[]{1}, true, new ScalarTypeOptional());                               // (len, 1)
        z.div_(sum);                                                                                            // softmax
        return picked.sub(sum.log());
    }

    /**
     * A frozen head (LoRA, QLoRA) differentiated by hand: ∂(Σ w·logp)/∂z = w·(onehot − softmax(z)), formed in place in
     * the fp32 logits, so a chunk holds 6 bytes a logit at most (the fp32 logits and their bf16 cast for the GEMM; the
     * bf16 GEMM output is freed once cast) where autograd's cross-entropy held 20 (GEMM output, fp32 copy, log-softmax,
     * two gradients).
     */
    private static double backwardFrozen(LlamaModel m, Tensor h, Tensor target, float[] weights, double uniform, int chunk) {
        long n = h.size(0);
        double sum = 0;
        Tensor grad;
        try (NoGradGuard ng = new NoGradGuard()) {
            grad = torch.empty_like(h);                                                                            // (N, C)
            for (long s = 0; s < n; s += chunk) {
                long len = Math.min(chunk, n - s), start = s;
                try (PointerScope cs = new PointerScope()) {
                    Tensor hc = h.detach().narrow(0, start, len);
                    Tensor z = Tensors.scoped(() -> m.logits(hc));                                               // (len, V) fp32
                    Tensor at = target.narrow(0, start, len).unsqueeze(1);                                       // (len, 1)
                    float[] w = new float[(int) len];
                    for (int i = 0; i < len; i++) w[i] = weights == null ? (float) uniform : weights[(int) start + i];
                    Tensor wt = Tensors.floats(w, len, 1);
                    if (m.compute.cuda()) wt = wt.to(m.compute.device(), torch.ScalarType.Float);
                    sum += logSoftmaxInPlace(z, at).mul(wt).sum().item_double();                                 // Σ w·logp; z is now softmax(z)
                    Tensor g = z.mul_(wt.neg()).scatter_add_(1, at, wt);                                         // w·(onehot − softmax), in place
                    grad.narrow(0, start, len).copy_(m.headGemmBackward(g));                                     // (len, C)
                }
            }
        }
        h.backward(grad, new BoolOptional(), false, new TensorArrayRefOptional());
        return sum;
    }
}
