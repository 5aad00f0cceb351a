package dev.tune4j.train;

import dev.tune4j.model.CausalLmLoss;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;

/** Mean next-token loss over a data set (no gradients), and its perplexity. */
public final class Evaluation {
    private Evaluation() {}

    public record Result(double loss, long tokens) {
        public double perplexity() {
            return Math.exp(loss);
        }
    }

    public static Result run(LlamaModel m, Batches data) {
        double sum = 0;
        long n = 0;
        for (var rows : data.inOrder()) {
            try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                var micro = data.assemble(rows, m.compute);
                var labels = Tensors.longs(micro.labels(), micro.batch().ids().size(0), micro.batch().ids().size(1));
                var r = CausalLmLoss.sum(m.logits(m.forward(micro.batch(), null, null)), m.compute.placeIndex(labels));
                sum += r.total();
                n += r.count();
            }
        }
        return new Result(n == 0 ? Double.NaN : sum / n, n);
    }
}
