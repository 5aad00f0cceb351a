package dev.tune4j.train;

import dev.tune4j.model.Batch;
import dev.tune4j.model.DecoderLayer;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.*;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;

/**
 * Forward and backward of one micro-batch for causal-LM training.
 *
 * <p>Logits exist only for positions whose next token is a target, and only {@code chunk} rows at a time: the final
 * hidden states of those positions are detached, each chunk's loss is back-propagated into them (its logits freed right
 * after), and the accumulated gradient then flows once through the trunk. The [tokens × vocab] matrix never exists.
 *
 * <p>With {@code checkpoint}, the trunk runs without a graph keeping only each layer's input; backward then recomputes
 * one layer at a time (the layer's activations live only while its gradient is computed).
 */
public final class Backprop {
    private Backprop() {}

    /** Sum of token losses in this micro-batch and how many tokens were predicted. */
    public record Result(double lossSum, long tokens) {}

    /**
     * @param labels     (B, T) host labels, −100 = no loss; position t is predicted from t−1 as in transformers
     * @param normalizer the number of predicted tokens in the whole optimizer step (all micro-batches): gradients are of
     *                   sum(loss) / normalizer, so accumulation gives the mean over all tokens, not a mean of means
     */
    public static Result run(LlamaModel m, Batch batch, long[] labels, long normalizer, boolean checkpoint, int chunk) {
        long b = batch.ids().size(0), t = batch.ids().size(1);
        var rows = new ArrayList<Long>();
        var targets = new ArrayList<Long>();
        for (int r = 0; r < b; r++)
            for (int i = 0; i + 1 < t; i++) {
                long y = labels[(int) (r * t + i + 1)];
                if (y != -100) {
                    rows.add(r * t + i);
                    targets.add(y);
                }
            }
        if (rows.isEmpty()) return new Result(0, 0);
        try (PointerScope scope = new PointerScope()) {
            Tensor rowIdx = m.compute.placeIndex(Tensors.longs(rows.stream().mapToLong(Long::longValue).toArray(), rows.size()));
            Tensor target = m.compute.placeIndex(Tensors.longs(targets.stream().mapToLong(Long::longValue).toArray(), targets.size()));
            if (!checkpoint) {
                Tensor hidden = m.forward(batch, null, null);                                          // (B, T, C)
                Tensor h = hidden.reshape(b * t, hidden.size(2)).index_select(0, rowIdx);             // (N, C)
                double loss = chunkedLoss(m, h, target, normalizer, chunk);
                return new Result(loss, rows.size());
            }
            // forward without a graph: keep each layer's input only
            var inputs = new ArrayList<Tensor>();
            LlamaModel.Context ctx;
            Tensor x;
            try (NoGradGuard ng = new NoGradGuard()) {
                ctx = m.context(batch, null);
                x = m.embed(batch.ids());                                                             // (B, T, C)
                for (DecoderLayer layer : m.layers) {
                    inputs.add(x);
                    Tensor in = x;
                    x = Tensors.scoped(() -> layer.forward(in, ctx.cos(), ctx.sin(), ctx.mask(), null));
                }
            }
            Tensor top = x.detach().set_requires_grad(true);
            Tensor h = m.norm.forward(top).reshape(b * t, x.size(2)).index_select(0, rowIdx);         // (N, C)
            double loss = chunkedLoss(m, h, target, normalizer, chunk);
            Tensor grad = top.grad();
            for (int i = m.layers.size() - 1; i >= 0; i--) {
                DecoderLayer layer = m.layers.get(i);
                Tensor in = inputs.get(i).detach().set_requires_grad(true), g = grad;
                grad = Tensors.scoped(() -> {                                                         // recompute, then backward
                    layer.forward(in, ctx.cos(), ctx.sin(), ctx.mask(), null).backward(g, new BoolOptional(), false, new TensorArrayRefOptional());
                    return in.grad();
                });
            }
            if (m.embed_tokens.requires_grad())
                m.embed(batch.ids()).backward(grad, new BoolOptional(), false, new TensorArrayRefOptional());
            return new Result(loss, rows.size());
        }
    }

    /** Σ CE(h·lm_headᵀ, target) / normalizer, back-propagated into h chunk by chunk; returns the loss sum. */
    private static double chunkedLoss(LlamaModel m, Tensor h, Tensor target, long normalizer, int chunk) {
        Tensor hd = h.detach().set_requires_grad(true);                                               // (N, C) leaf
        long n = hd.size(0);
        double sum = 0;
        for (long s = 0; s < n; s += chunk) {
            long len = Math.min(chunk, n - s), start = s;
            try (PointerScope cs = new PointerScope()) {
                Tensor logits = m.logits(hd.narrow(0, start, len));                                   // (len, V) fp32
                Tensor ce = torch.cross_entropy_loss(logits, target.narrow(0, start, len), new TensorOptional(), 2, -100, 0.0); // sum
                sum += ce.item_double();
                ce.div(new Scalar((double) normalizer)).backward();
            }
        }
        h.backward(hd.grad(), new BoolOptional(), false, new TensorArrayRefOptional());
        return sum;
    }
}
