package dev.tune4j.train;

import dev.tune4j.dist.Group;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An objective's loss over a data set without gradients, through the same chunked head as training (no full logits):
 * mean next-token loss and perplexity for token data, the preference loss and TRL's metrics for pairs.
 */
public final class Evaluation {
    private Evaluation() {}

    /** @param metrics the objective's metrics averaged over the rows (empty for token cross-entropy) */
    public record Result(double loss, long tokens, Map<String, Double> metrics) {
        public double perplexity() {
            return Math.exp(loss);
        }
    }

    public static Result run(LlamaModel m, MicroSource data) {
        return run(m, data, TokenLoss.INSTANCE, TrainConfig.LOSS_CHUNK, "evaluation");
    }

    public static Result run(LlamaModel m, MicroSource data, Objective obj, int chunk) {
        return run(m, data, obj, chunk, "evaluation");
    }

    /** @param task the progress bar's name (shown once the pass lasts) */
    public static Result run(LlamaModel m, MicroSource data, Objective obj, int chunk, String task) {
        return run(m, data, obj, chunk, task, Group.SINGLE);
    }

    /**
     * @param data  this process's shard of the data set (data parallel)
     * @param group the ranks whose sums are added, so every rank gets the same result (early stopping agrees)
     */
    public static Result run(LlamaModel m, MicroSource data, Objective obj, int chunk, String task, Group group) {
        double sum = 0, weight = 0;
        long n = 0;
        var metrics = new LinkedHashMap<String, Double>();
        try (var bar = StepProgress.phase(task, data.inOrderCount(), " batches")) {
            for (int i = 0; i < data.inOrderCount(); i++, bar.step()) {
                try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                    Micro mb = data.inOrder(i, m.compute);
                    var pos = Head.Positions.of(mb.labels(), mb.completion(), mb.rows(), mb.length());
                    if (pos.size() == 0) continue;
                    obj.prepare(mb);
                    Tensor hidden = m.forward(mb.batch(), null, null);                                     // (B, T, C)
                    Tensor h = hidden.reshape((long) mb.rows() * mb.length(), hidden.size(2))
                            .index_select(0, m.compute.placeIndex(Tensors.longs(pos.flat(), pos.size())));  // (N, C)
                    var stats = Head.logps(m, h, m.compute.placeIndex(Tensors.longs(pos.target(), pos.size())), chunk);
                    n += pos.size();
                    if (!obj.needsLogps()) {
                        for (float lp : stats.logp()) sum -= lp;                                          // token CE: mean over tokens
                        weight += pos.size();
                        continue;
                    }
                    var out = obj.apply(mb, pos, stats, 1.0);                                             // mean over rows
                    int rows = mb.rows();
                    sum += out.loss() * rows;
                    weight += rows;
                    out.metrics().forEach((k, v) -> metrics.merge(k, v * rows, Double::sum));
                }
            }
        }
        if (!group.single()) {
            double[] sums = group.sum(sum, weight, n);
            sum = sums[0];
            weight = sums[1];
            n = (long) sums[2];
            var global = group.sum(metrics);
            metrics.clear();
            metrics.putAll(global);
        }
        double w = weight;
        metrics.replaceAll((k, v) -> v / w);
        return new Result(weight == 0 ? Double.NaN : sum / weight, n, metrics);
    }
}
