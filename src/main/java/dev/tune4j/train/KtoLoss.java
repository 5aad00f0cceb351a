package dev.tune4j.train;

import dev.tune4j.hf.UserError;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AutoGradMode;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * KTO on unpaired examples, as TRL's KTOTrainer (loss_type kto): each completion is desirable or not, and is scored
 * against the reference relative to a KL estimate from mismatched pairs in the same batch (the {@link PairBatches#kto}
 * layout: n completion rows, then n KL rows). KL = max(0, mean(policy − reference) over the KL rows), without gradient;
 * desirable: w_d·(1 − σ(β((p − r) − KL))), undesirable: w_u·(1 − σ(β(KL − (p − r)))); the loss is their mean over n.
 */
public final class KtoLoss implements Objective {
    private final double beta, desirableWeight, undesirableWeight;
    private final boolean[] desirableById;
    private final PreferenceLoss.Reference reference;
    private double[] refNow;

    /** @param desirableById whether item id (a {@link Micro#rowIds()} value) is desirable */
    public KtoLoss(double beta, double desirableWeight, double undesirableWeight, boolean[] desirableById, PreferenceLoss.Reference reference) {
        if (!(beta > 0)) throw new UserError("beta must be positive, found " + beta);
        this.beta = beta;
        this.desirableWeight = desirableWeight;
        this.undesirableWeight = undesirableWeight;
        this.desirableById = desirableById.clone();
        this.reference = reference;
    }

    @Override
    public boolean needsLogps() {
        return true;
    }

    @Override
    public void prepare(Micro mb) {
        refNow = reference.logps(mb);
    }

    @Override
    public Outcome apply(Micro mb, Head.Positions pos, Head.Stats stats, double scale) {
        // the loss graph is built even under evaluation's no-grad mode: it is tiny, and the same code path gives the metrics
        try (PointerScope s = new PointerScope(); AutoGradMode grad = new AutoGradMode(true)) {
            Tensor lp = Tensors.floats(stats.logp(), pos.size()).to(torch.ScalarType.Double).set_requires_grad(true); // (N)
            var metrics = new LinkedHashMap<String, Double>();
            Tensor loss = loss(lp, pos, stats.meanLogit(), refNow, mb.rowIds(), metrics);
            loss.mul(new Scalar(scale)).backward();
            return new Outcome(loss.item_double() * scale, Tensors.toFloats(lp.grad().to(torch.ScalarType.Float)), 0, metrics);
        }
    }

    /** The mean loss over the n examples as a graph over {@code lp}, filling TRL's KTO metrics. */
    public Tensor loss(Tensor lp, Head.Positions pos, float[] meanLogit, double[] ref, int[] rowIds, Map<String, Double> metrics) {
        int rows = pos.rows(), n = rows / 2;
        double[] comp = new double[pos.size()], logitSum = new double[2];
        int[] logitN = new int[2];
        long[] row = new long[pos.size()];
        for (int p = 0; p < pos.size(); p++) {
            row[p] = pos.row()[p];
            if (!pos.completion()[p]) continue;
            comp[p] = 1;
            if (pos.row()[p] < n) {
                int k = desirableById[rowIds[pos.row()[p]]] ? 0 : 1;
                logitSum[k] += meanLogit[p];
                logitN[k]++;
            }
        }
        Tensor sums = torch.zeros(new long[]{rows}, new TensorOptions(torch.ScalarType.Double))
                .index_add(0, Tensors.longs(row, row.length), lp.mul(Tensors.doubles(comp)));         // (2n)
        Tensor r = Tensors.doubles(ref);
        Tensor logratio = sums.narrow(0, 0, n).sub(r.narrow(0, 0, n));                                // (n) p − r
        double kl = Math.max(0, sums.narrow(0, n, n).detach().sub(r.narrow(0, n, n)).mean().item_double());
        double[] desirable = new double[n], w = new double[n];
        int nd = 0;
        for (int i = 0; i < n; i++) {
            boolean d = desirableById[rowIds[i]];
            desirable[i] = d ? 1 : 0;
            w[i] = d ? desirableWeight : undesirableWeight;
            if (d) nd++;
        }
        Tensor dmask = Tensors.doubles(desirable), sign = dmask.mul(new Scalar(2)).sub(new Scalar(1));  // +1 desirable, −1 not
        Tensor perExample = torch.sigmoid(logratio.sub(new Scalar(kl)).mul(sign).mul(new Scalar(beta))).neg().add(new Scalar(1)).mul(Tensors.doubles(w));
        Tensor rewards = logratio.detach().mul(new Scalar(beta)), logps = sums.narrow(0, 0, n).detach();
        metrics.put("kl", kl);
        double rc = nd == 0 ? Double.NaN : rewards.mul(dmask).sum().item_double() / nd, rr = nd == n ? Double.NaN : rewards.mul(dmask.neg().add(new Scalar(1))).sum().item_double() / (n - nd);
        metrics.put("rewards/chosen", rc);
        metrics.put("rewards/rejected", rr);
        metrics.put("rewards/margins", rc - rr);
        metrics.put("logps/chosen", nd == 0 ? Double.NaN : logps.mul(dmask).sum().item_double() / nd);
        metrics.put("logps/rejected", nd == n ? Double.NaN : logps.mul(dmask.neg().add(new Scalar(1))).sum().item_double() / (n - nd));
        metrics.put("logits/chosen", logitN[0] == 0 ? Double.NaN : logitSum[0] / logitN[0]);
        metrics.put("logits/rejected", logitN[1] == 0 ? Double.NaN : logitSum[1] / logitN[1]);
        return perExample.mean();
    }
}
