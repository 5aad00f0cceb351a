package dev.tune4j.model;

import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Keys and values of past positions, preallocated to {@code capacity} so decoding writes in place instead of growing
 * (and re-allocating) a tensor per token. Lives outside step scopes; close it when the sequence is done.
 */
public final class KvCache implements AutoCloseable {
    private final Tensor[] keys, values; // per layer (B, kv_heads, capacity, hd)
    private final int capacity;
    private int length;

    public KvCache(int layers, long batch, long kvHeads, long headDim, int capacity, Compute compute) {
        this.capacity = capacity;
        keys = new Tensor[layers];
        values = new Tensor[layers];
        for (int i = 0; i < layers; i++) {
            keys[i] = Tensors.escape(() -> torch.zeros(new long[]{batch, kvHeads, capacity, headDim}, optionsOf(compute)));
            values[i] = Tensors.escape(() -> torch.zeros(new long[]{batch, kvHeads, capacity, headDim}, optionsOf(compute)));
        }
    }

    private static org.bytedeco.pytorch.TensorOptions optionsOf(Compute c) {
        return new org.bytedeco.pytorch.TensorOptions(c.device()).dtype(new org.bytedeco.pytorch.ScalarTypeOptional(c.dtype()));
    }

    /** Positions already cached (the offset of the next token). */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** Stores k, v (B, kvh, T, hd) of one layer at [length, length+T) and returns all keys/values so far (views). */
    Tensor[] append(int layer, Tensor k, Tensor v) {
        long t = k.size(2);
        if (length + t > capacity) throw new IllegalStateException("KV cache full: " + length + " + " + t + " > capacity " + capacity);
        keys[layer].narrow(2, length, t).copy_(k);
        values[layer].narrow(2, length, t).copy_(v);
        return new Tensor[]{keys[layer].narrow(2, 0, length + t), values[layer].narrow(2, 0, length + t)};
    }

    /** Called by the model once every layer has appended the step's tokens. */
    void advance(long t) {
        length += (int) t;
    }

    @Override
    public void close() {
        for (Tensor t : keys) t.close();
        for (Tensor t : values) t.close();
    }
}
