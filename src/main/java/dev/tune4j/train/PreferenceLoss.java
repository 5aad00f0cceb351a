package dev.tune4j.train;

import dev.tune4j.hf.UserError;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.*;
import org.bytedeco.pytorch.global.torch;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Paired preference objectives with TRL's semantics (v1.9; cDPO as v0.28): the DPO family against a reference
 * (sigmoid, ipo, hinge, robust), and the reference-free SimPO (CPO trainer, loss_type simpo) and ORPO. On a micro-batch
 * of B pairs (rows 0..B−1 chosen, B..2B−1 rejected) the loss is a function of each row's summed completion log-probs;
 * it is built as a small graph over the per-position log-probs, so its backward gives the head its per-position
 * weights. Logged as TRL names the metrics.
 */
public final class PreferenceLoss implements Objective {
    public enum Type {
        SIGMOID, IPO, HINGE, ROBUST, SIMPO, ORPO;

        public static Type parse(String s) {
            try {
                return valueOf(s.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new UserError("loss-type: expected sigmoid, ipo, hinge, robust (dpo), simpo or orpo, found '" + s + "'");
            }
        }

        public boolean needsReference() {
            return this != SIMPO && this != ORPO;
        }
    }

    /**
     * @param beta           DPO β (TRL default 0.1); SimPO's β (TRL CPO default 0.1; the SimPO paper uses 2); ORPO's λ
     * @param labelSmoothing robust DPO's ε, and with sigmoid TRL ≤ 0.28's conservative DPO (later TRL ignores it there)
     * @param simpoGamma     SimPO's margin γ (TRL's simpo_gamma, default 0.5)
     * @param cpoAlpha       weight of the NLL on chosen completions for SimPO (TRL CPOConfig cpo_alpha; 0 = pure SimPO)
     */
    public record Config(Type type, double beta, double labelSmoothing, double simpoGamma, double cpoAlpha) {
        public Config {
            if (!(beta > 0)) throw new UserError("beta must be positive, found " + beta);
            if (labelSmoothing < 0 || labelSmoothing >= 0.5) throw new UserError("label-smoothing must be in [0, 0.5), found " + labelSmoothing);
        }
    }

    /** Reference log-probs of each row of a micro-batch, summed over its completion tokens (chosen rows, then rejected). */
    public interface Reference {
        double[] logps(Micro mb);
    }

    private final Config cfg;
    private final Reference reference;
    private double[] refNow;

    public PreferenceLoss(Config cfg, Reference reference) {
        if (cfg.type().needsReference() && reference == null) throw new IllegalStateException(cfg.type() + " needs a reference model");
        this.cfg = cfg;
        this.reference = cfg.type().needsReference() ? reference : null;
    }

    public Config config() {
        return cfg;
    }

    @Override
    public boolean needsLogps() {
        return true;
    }

    @Override
    public void prepare(Micro mb) {
        refNow = reference == null ? null : reference.logps(mb);
    }

    @Override
    public Outcome apply(Micro mb, Head.Positions pos, Head.Stats stats, double scale) {
        // the loss graph is built even under evaluation's no-grad mode: it is tiny, and the same code path gives the metrics
        try (PointerScope s = new PointerScope(); AutoGradMode grad = new AutoGradMode(true)) {
            Tensor lp = Tensors.floats(stats.logp(), pos.size()).to(torch.ScalarType.Double).set_requires_grad(true); // (N)
            var metrics = new LinkedHashMap<String, Double>();
            Tensor loss = loss(lp, pos, stats.meanLogit(), refNow, metrics);
            loss.mul(new Scalar(scale)).backward();
            float[] w = Tensors.toFloats(lp.grad().to(torch.ScalarType.Float));
            return new Outcome(loss.item_double() * scale, w, 0, metrics);
        }
    }

    /**
     * The mean loss over the pairs as a graph over {@code lp} (per-position log-probs), filling TRL's metrics.
     *
     * @param ref per-row reference sums, or null for the reference-free losses
     */
    public Tensor loss(Tensor lp, Head.Positions pos, float[] meanLogit, double[] ref, Map<String, Double> metrics) {
        int rows = pos.rows(), b = rows / 2;
        double[] comp = new double[pos.size()], count = new double[rows], chosenNll = new double[pos.size()];
        double[] logitSum = new double[2];
        int[] logitN = new int[2];
        long[] row = new long[pos.size()];
        int nllCount = 0;
        for (int p = 0; p < pos.size(); p++) {
            row[p] = pos.row()[p];
            boolean chosen = pos.row()[p] < b;
            if (chosen && (cfg.type() == Type.ORPO || pos.completion()[p])) { chosenNll[p] = 1; nllCount++; }
            if (!pos.completion()[p]) continue;
            comp[p] = 1;
            count[pos.row()[p]]++;
            logitSum[chosen ? 0 : 1] += meanLogit[p];
            logitN[chosen ? 0 : 1]++;
        }
        Tensor c = Tensors.doubles(comp), rowIdx = Tensors.longs(row, row.length), n = Tensors.doubles(count);
        Tensor sums = torch.zeros(new long[]{rows}, new TensorOptions(torch.ScalarType.Double)).index_add(0, rowIdx, lp.mul(c)); // (2B)
        Tensor pc = sums.narrow(0, 0, b), pr = sums.narrow(0, b, b);
        Tensor avg = sums.div(n), ac = avg.narrow(0, 0, b), ar = avg.narrow(0, b, b);
        double beta = cfg.beta(), ls = cfg.labelSmoothing();
        Tensor perPair, chosenReward, rejectedReward;
        switch (cfg.type()) {
            case SIMPO, ORPO -> {
                chosenReward = ac.mul(new Scalar(beta));
                rejectedReward = ar.mul(new Scalar(beta));
                metrics.put("logps/chosen", ac.mean().item_double());
                metrics.put("logps/rejected", ar.mean().item_double());
                Tensor nll = lp.mul(Tensors.doubles(chosenNll)).sum().neg().div(new Scalar((double) Math.max(1, nllCount)));
                if (cfg.type() == Type.SIMPO) {
                    perPair = torch.log_sigmoid(ac.sub(ar).mul(new Scalar(beta)).sub(new Scalar(cfg.simpoGamma()))).neg();
                    if (cfg.cpoAlpha() > 0) perPair = perPair.add(nll.mul(new Scalar(cfg.cpoAlpha())));
                    if (cfg.cpoAlpha() > 0) metrics.put("nll_loss", nll.item_double());
                } else {
                    Tensor logOdds = ac.sub(ar).sub(log1mexp(ac).sub(log1mexp(ar)));                  // (B)
                    Tensor ratio = torch.log_sigmoid(logOdds);
                    perPair = nll.sub(ratio.mul(new Scalar(beta)));
                    metrics.put("nll_loss", nll.item_double());
                    metrics.put("log_odds_ratio", ratio.mean().item_double());
                    metrics.put("log_odds_chosen", logOdds.mean().item_double());
                }
            }
            default -> {
                Tensor r = Tensors.doubles(ref), rc = r.narrow(0, 0, b), rr = r.narrow(0, b, b);
                chosenReward = pc.sub(rc).mul(new Scalar(beta)).detach();
                rejectedReward = pr.sub(rr).mul(new Scalar(beta)).detach();
                Tensor d = pc.sub(rc).sub(pr.sub(rr));                                                // (B)
                Tensor bd = d.mul(new Scalar(beta));
                perPair = switch (cfg.type()) {
                    case SIGMOID -> torch.log_sigmoid(bd).mul(new Scalar(-(1 - ls))).sub(torch.log_sigmoid(bd.neg()).mul(new Scalar(ls)));
                    case ROBUST -> torch.log_sigmoid(bd).mul(new Scalar(-(1 - ls))).add(torch.log_sigmoid(bd.neg()).mul(new Scalar(ls))).div(new Scalar(1 - 2 * ls));
                    case HINGE -> torch.relu(bd.neg().add(new Scalar(1)));
                    case IPO -> {
                        Tensor nc = n.narrow(0, 0, b), nr = n.narrow(0, b, b);
                        Tensor h = pc.sub(rc).div(nc).sub(pr.sub(rr).div(nr));                          // length-normalised, as TRL
                        yield h.sub(new Scalar(1 / (2 * beta))).pow(new Scalar(2));
                    }
                    default -> throw new IllegalStateException();
                };
                metrics.put("logps/chosen", pc.mean().item_double());
                metrics.put("logps/rejected", pr.mean().item_double());
            }
        }
        Tensor cr = chosenReward.detach(), rj = rejectedReward.detach();
        metrics.put("rewards/chosen", cr.mean().item_double());
        metrics.put("rewards/rejected", rj.mean().item_double());
        metrics.put("rewards/accuracies", cr.gt(rj).to(torch.ScalarType.Double).mean().item_double());
        metrics.put("rewards/margins", cr.sub(rj).mean().item_double());
        metrics.put("logits/chosen", logitN[0] == 0 ? Double.NaN : logitSum[0] / logitN[0]);
        metrics.put("logits/rejected", logitN[1] == 0 ? Double.NaN : logitSum[1] / logitN[1]);
        return perPair.mean();
    }

    /** log(1 − eˣ) for x < 0, stable on both sides of −ln 2 (TRL's log1mexp). */
    private static Tensor log1mexp(Tensor x) {
        Tensor small = torch.log1p(torch.exp(x).neg()), large = torch.log(torch.expm1(x).neg());
        return torch.where(x.lt(new Scalar(-Math.log(2))), small, large);
    }

    /**
     * The reference as the same model with adapters switched (LoRA: the policy adapter off; from an SFT adapter: the
     * frozen SFT copy on), run without a graph through the same chunked head.
     */
    public static Reference switched(LlamaModel m, Runnable toReference, Runnable toPolicy, int chunk) {
        return mb -> {
            var pos = Head.Positions.of(mb.labels(), mb.completion(), mb.rows(), mb.length());
            double[] sums = new double[mb.rows()];
            toReference.run();
            try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                Tensor hidden = m.forward(mb.batch(), null, null);                                     // (R, T, C)
                Tensor h = hidden.reshape((long) mb.rows() * mb.length(), hidden.size(2)).index_select(0, m.compute.placeIndex(Tensors.longs(pos.flat(), pos.size())));
                float[] lp = Head.logps(m, h, m.compute.placeIndex(Tensors.longs(pos.target(), pos.size())), chunk).logp();
                for (int p = 0; p < pos.size(); p++) if (pos.completion()[p]) sums[pos.row()[p]] += lp[p];
            } finally {
                toPolicy.run();
            }
            return sums;
        };
    }
}
