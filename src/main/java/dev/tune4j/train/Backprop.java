package dev.tune4j.train;

import dev.tune4j.model.Batch;
import dev.tune4j.model.DecoderLayer;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.*;

import java.util.ArrayList;
import java.util.Map;

/**
 * Forward and backward of one micro-batch: the trunk (embeddings → layers → final norm) runs once, the hidden states of
 * the labelled positions go to the {@link Head} under the {@link Objective}, and the head's gradient flows once back
 * through the trunk.
 *
 * <p>With {@code checkpoint}, the trunk runs without a graph keeping only each layer's input; backward then recomputes
 * one layer at a time (the layer's activations live only while its gradient is computed).
 */
public final class Backprop {
    private Backprop() {}

    /** The micro-batch's scaled loss, the tokens it predicted, and the objective's metrics. */
    public record Result(double loss, long tokens, Map<String, Double> metrics) {}

    public static Result run(LlamaModel m, Micro mb, Objective obj, double scale, boolean checkpoint, int chunk) {
        var pos = Head.Positions.of(mb.labels(), mb.completion(), mb.rows(), mb.length());
        if (pos.size() == 0) return new Result(0, 0, Map.of());
        obj.prepare(mb);
        try (PointerScope scope = new PointerScope()) {
            Batch batch = mb.batch();
            long b = mb.rows(), t = mb.length();
            Tensor rowIdx = m.compute.placeIndex(Tensors.longs(pos.flat(), pos.size()));
            Tensor target = m.compute.placeIndex(Tensors.longs(pos.target(), pos.size()));
            if (!checkpoint) {
                Tensor hidden = m.forward(batch, null, null);                                          // (B, T, C)
                Tensor h = hidden.reshape(b * t, hidden.size(2)).index_select(0, rowIdx);             // (N, C)
                return head(m, mb, obj, scale, pos, h, target, chunk);
            }
            // forward without a graph: keep each layer's input only, and (CPU) the generator's state before each layer, so
            // the recompute draws the same dropout masks (torch.utils.checkpoint's preserve_rng_state)
            var inputs = new ArrayList<Tensor>();
            var rng = new ArrayList<Tensor>();
            org.bytedeco.pytorch.Generator gen = m.compute.cuda() ? null : org.bytedeco.pytorch.global.torch.getDefaultCPUGenerator();
            LlamaModel.Context ctx;
            Tensor x;
            try (NoGradGuard ng = new NoGradGuard()) {
                ctx = m.context(batch, null);
                x = m.embed(batch.ids());                                                             // (B, T, C)
                for (DecoderLayer layer : m.layers) {
                    inputs.add(x);
                    if (gen != null) rng.add(gen.get_state());
                    Tensor in = x;
                    x = Tensors.scoped(() -> layer.forward(in, ctx.cos(), ctx.sin(), ctx.mask(), null));
                }
            }
            Tensor after = gen == null ? null : gen.get_state();
            Tensor top = x.detach().set_requires_grad(true);
            Tensor h = m.norm.forward(top).reshape(b * t, x.size(2)).index_select(0, rowIdx);         // (N, C)
            Result r = head(m, mb, obj, scale, pos, h, target, chunk);
            Tensor grad = top.grad();
            for (int i = m.layers.size() - 1; i >= 0; i--) {
                DecoderLayer layer = m.layers.get(i);
                Tensor in = inputs.get(i).detach().set_requires_grad(true), g = grad;
                if (gen != null) gen.set_state(rng.get(i));
                grad = Tensors.scoped(() -> {                                                         // recompute, then backward
                    layer.forward(in, ctx.cos(), ctx.sin(), ctx.mask(), null).backward(g, new BoolOptional(), false, new TensorArrayRefOptional());
                    return in.grad();
                });
            }
            if (after != null) gen.set_state(after); // the stream continues as after one forward pass
            if (m.embed_tokens.requires_grad())
                m.embed(batch.ids()).backward(grad, new BoolOptional(), false, new TensorArrayRefOptional());
            return r;
        }
    }

    private static Result head(LlamaModel m, Micro mb, Objective obj, double scale, Head.Positions pos, Tensor h, Tensor target, int chunk) {
        Head.Stats stats = obj.needsLogps() ? Head.logps(m, h, target, chunk) : null;
        var out = obj.apply(mb, pos, stats, scale);
        double weighted = Head.backward(m, h, target, out.weights(), out.uniform(), chunk);
        return new Result(Double.isNaN(out.loss()) ? weighted : out.loss(), pos.size(), out.metrics());
    }

    /** Token cross-entropy on one batch (tests, benchmarks): the loss sum and count, gradients of sum / normalizer. */
    public static Result tokenLoss(LlamaModel m, Batch batch, long[] labels, long normalizer, boolean checkpoint, int chunk) {
        var mb = new Micro(batch, labels, null, 0, 0, null);
        Result r = run(m, mb, TokenLoss.INSTANCE, 1.0 / normalizer, checkpoint, chunk);
        return new Result(r.loss() * normalizer, r.tokens(), r.metrics());
    }
}
