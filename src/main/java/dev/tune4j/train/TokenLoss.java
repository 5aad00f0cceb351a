package dev.tune4j.train;

import java.util.Map;

/**
 * Next-token cross-entropy on the labelled positions (SFT on completions, continued pre-training on raw text). The
 * step's loss is Σ CE / N with N the labelled tokens of the whole optimizer step, so accumulation gives the mean over
 * all tokens, not a mean of micro-batch means: the caller passes scale = 1/N.
 */
public final class TokenLoss implements Objective {
    public static final TokenLoss INSTANCE = new TokenLoss();

    private TokenLoss() {}

    @Override
    public boolean needsLogps() {
        return false;
    }

    /** The step's labelled tokens over every rank: each rank's sum over its tokens is then its part of the global mean. */
    @Override
    public double scale(long predictedInStep, int microBatches, double share) {
        return 1.0 / Math.max(1, predictedInStep);
    }

    @Override
    public Outcome apply(Micro mb, Head.Positions pos, Head.Stats stats, double scale) {
        return new Outcome(Double.NaN, null, -scale, Map.of()); // L = −scale·Σ logp
    }
}
