package dev.tune4j.train;

import dev.tune4j.tensor.Compute;

/**
 * The micro-batches of a run in a fixed order, as a pure function of (seed, k): a resumed run continues with exactly
 * the data an uninterrupted run would have seen. {@link Batches} (token data) and {@link PairBatches} (preference data).
 */
public interface MicroSource {
    /** Micro-batches per epoch. */
    int perEpoch();

    /** Micro-batch number k (0-based over the whole run); tensors are created in the caller's scope. */
    Micro get(long k, Compute c);

    /**
     * Labels micro-batch k will predict, from host data (the token normalizer is known before any forward); under data
     * parallelism, over every rank's part of it (each rank computes the global count from the deterministic batches).
     */
    long predictedAt(long k);

    /** This process's share of micro-batch k's rows (1 without data parallelism): the weight of its mean-over-rows loss. */
    default double share(long k) {
        return 1;
    }

    /** Every row once, in a fixed order (evaluation; Batches goes shortest first, so its batches pad little). */
    int inOrderCount();

    Micro inOrder(int i, Compute c);

    boolean isEmpty();
}
