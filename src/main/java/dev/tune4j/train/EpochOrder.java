package dev.tune4j.train;

import java.util.*;

/**
 * Which items make micro-batch k: items are shuffled per epoch with seed + epoch and cut into batches, so micro-batch k
 * is a pure function of (seed, k) and a resumed run sees exactly the data an uninterrupted one would have seen.
 *
 * <p>Data parallel: the batches are cut at batch size × world size — the batches one process at the global batch would
 * train on — and rank r takes items [r·b, (r+1)·b) of each, so N processes at batch b train exactly what one process
 * at batch N·b trains (the last, short batch of an epoch may leave a rank fewer items, or none).
 */
final class EpochOrder {
    private final int n, batchSize, rank, world;
    private final long seed;
    private int cachedEpoch = -1;
    private List<Integer> order;

    EpochOrder(int n, int batchSize, long seed) {
        this(n, batchSize, seed, Shard.ONE);
    }

    EpochOrder(int n, int batchSize, long seed, Shard shard) {
        this.n = n;
        this.batchSize = batchSize;
        this.seed = seed;
        this.rank = shard.rank();
        this.world = shard.world();
    }

    /** Global micro-batches per epoch (the same on every rank). */
    int perEpoch() {
        return (n + batchSize * world - 1) / (batchSize * world);
    }

    /** Item indices of this rank's part of micro-batch k (0-based over the whole run). */
    int[] at(long k) {
        int[] all = globalAt(k);
        return Arrays.copyOfRange(all, Math.min(all.length, rank * batchSize), Math.min(all.length, (rank + 1) * batchSize));
    }

    /** Item indices of the whole micro-batch k, over every rank (its token count is the loss normalizer). */
    int[] globalAt(long k) {
        int epoch = (int) (k / perEpoch()), idx = (int) (k % perEpoch()), global = batchSize * world;
        if (epoch != cachedEpoch) {
            order = new ArrayList<>();
            for (int i = 0; i < n; i++) order.add(i);
            Collections.shuffle(order, new Random(seed + epoch));
            cachedEpoch = epoch;
        }
        return order.subList(idx * global, Math.min(n, (idx + 1) * global)).stream().mapToInt(Integer::intValue).toArray();
    }

    /** This rank's share of micro-batch k's items (the weight of its mean-over-rows loss in the global mean). */
    double share(long k) {
        int all = globalAt(k).length;
        return all == 0 ? 0 : (double) at(k).length / all;
    }

    /** Item indices of this rank's part of the i-th batch in file order (evaluation). */
    int[] inOrder(int i) {
        int global = batchSize * world, from = Math.min(n, i * global + rank * batchSize);
        return java.util.stream.IntStream.range(from, Math.min(n, Math.min(from + batchSize, (i + 1) * global))).toArray();
    }
}
