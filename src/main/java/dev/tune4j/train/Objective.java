package dev.tune4j.train;

import java.util.Map;

/**
 * What a training step optimises, given the target log-probs the {@link Head} computes: the seam between the one loop
 * and the methods. Token cross-entropy (SFT, continued pre-training) and the preference losses (DPO family, SimPO,
 * ORPO, KTO) each implement it once; the trunk's forward/backward and the head are the same for all of them.
 */
public interface Objective {
    /** false when the weights on the log-probs are known before the head runs (token cross-entropy): the head then runs once. */
    boolean needsLogps();

    /**
     * The factor on each micro-batch's loss: by default the mean over the micro-batches of a step (each micro-batch's loss
     * is already a mean over its rows, as in TRL); token cross-entropy divides by the step's labelled tokens instead.
     *
     * @param share this process's share of the micro-batch's rows (data parallel; 1 otherwise): a rank's mean over its
     *              rows, weighted by its share and summed over the ranks, is the mean over the whole micro-batch
     */
    default double scale(long predictedInStep, int microBatches, double share) {
        return share / microBatches;
    }

    /** Work before the policy's forward pass on this micro-batch (a reference model's log-probs, without a graph). */
    default void prepare(Micro mb) {}

    /**
     * The loss of one micro-batch times {@code scale} (the accumulation share) and its gradient with respect to each
     * position's log-prob.
     *
     * @param stats per-position log-probs and mean logits, or null when {@link #needsLogps()} is false
     */
    Outcome apply(Micro mb, Head.Positions pos, Head.Stats stats, double scale);

    /**
     * @param loss    the scaled loss, or NaN when the head's weighted sum is the loss (token cross-entropy)
     * @param weights dL/dlogp per position, or null for {@code uniform} everywhere
     * @param metrics what to log for this micro-batch (TRL's names), averaged over the micro-batches of a step
     */
    record Outcome(double loss, float[] weights, double uniform, Map<String, Double> metrics) {}
}
