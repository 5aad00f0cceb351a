package dev.tune4j.model;

import org.bytedeco.pytorch.Tensor;

/**
 * What a forward pass reads besides the weights.
 *
 * @param ids           (B, T) token ids
 * @param positions     (B, T) position ids, or null: derived from the attention mask (HF's left-padding rule) or counted
 * @param attentionMask (B, past+T) 1 = token, 0 = padding; null = no padding
 * @param segments      (B, T) packed rows: example number per token (1, 2, …; 0 = padding). Attention never crosses
 *                      examples; positions must then be given per example. null = not packed
 */
public record Batch(Tensor ids, Tensor positions, Tensor attentionMask, Tensor segments) {
    public static Batch of(Tensor ids) {
        return new Batch(ids, null, null, null);
    }

    public static Batch padded(Tensor ids, Tensor attentionMask) {
        return new Batch(ids, null, attentionMask, null);
    }

    public static Batch packed(Tensor ids, Tensor positions, Tensor segments) {
        return new Batch(ids, positions, null, segments);
    }
}
