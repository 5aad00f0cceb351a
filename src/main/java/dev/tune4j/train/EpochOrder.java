package dev.tune4j.train;

import java.util.*;

/**
 * Which items make micro-batch k: items are shuffled per epoch with seed + epoch and cut into batches, so micro-batch k
 * is a pure function of (seed, k) and a resumed run sees exactly the data an uninterrupted one would have seen.
 */
final class EpochOrder {
    private final int n, batchSize;
    private final long seed;
    private int cachedEpoch = -1;
    private List<Integer> order;

    EpochOrder(int n, int batchSize, long seed) {
        this.n = n;
        this.batchSize = batchSize;
        this.seed = seed;
    }

    int perEpoch() {
        return (n + batchSize - 1) / batchSize;
    }

    /** Item indices of micro-batch k (0-based over the whole run). */
    int[] at(long k) {
        int epoch = (int) (k / perEpoch()), idx = (int) (k % perEpoch());
        if (epoch != cachedEpoch) {
            order = new ArrayList<>();
            for (int i = 0; i < n; i++) order.add(i);
            Collections.shuffle(order, new Random(seed + epoch));
            cachedEpoch = epoch;
        }
        return order.subList(idx * batchSize, Math.min(n, (idx + 1) * batchSize)).stream().mapToInt(Integer::intValue).toArray();
    }

    /** Item indices of the i-th batch in file order (evaluation). */
    int[] inOrder(int i) {
        return java.util.stream.IntStream.range(i * batchSize, Math.min(n, (i + 1) * batchSize)).toArray();
    }
}
