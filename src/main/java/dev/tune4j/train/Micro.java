package dev.tune4j.train;

import dev.tune4j.model.Batch;

/**
 * One micro-batch ready for the model: tensors plus host labels (B, T), −100 where nothing is predicted.
 *
 * @param completion (B, T) which labels are completion tokens, or null when every label is (all but ORPO's NLL rows)
 * @param tokens     real (non-padding) tokens in the batch
 * @param predicted  labels that will be predicted (the token cross-entropy normalizer's share)
 * @param rowIds     which example (preference pair, KTO example) each row comes from, or null
 */
public record Micro(Batch batch, long[] labels, boolean[] completion, long tokens, long predicted, int[] rowIds) {
    public int rows() {
        return (int) batch.ids().size(0);
    }

    public int length() {
        return (int) batch.ids().size(1);
    }
}
