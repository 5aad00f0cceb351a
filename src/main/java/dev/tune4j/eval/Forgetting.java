package dev.tune4j.eval;

/**
 * The catastrophic-forgetting check: perplexity on general text before and after fine-tuning; a relative increase
 * above the threshold (default 10%) is flagged.
 */
public record Forgetting(double basePerplexity, double tunedPerplexity, double threshold, long tokens) {
    public static final double DEFAULT_THRESHOLD = 0.10;

    public double relativeIncrease() {
        return tunedPerplexity / basePerplexity - 1;
    }

    public boolean flagged() {
        return relativeIncrease() > threshold;
    }

    public String summary() {
        return String.format("general-text perplexity %.3f → %.3f (%+.1f%%, threshold %+.0f%%): %s", basePerplexity, tunedPerplexity,
                100 * relativeIncrease(), 100 * threshold, flagged() ? "FORGETTING: the fine-tune hurt general text" : "ok");
    }
}
