package dev.tune4j.train;

/** Which part of each batch this process trains on: rank r of a data-parallel world (one process: rank 0 of 1). */
public record Shard(int rank, int world) {
    public static final Shard ONE = new Shard(0, 1);

    public Shard {
        if (world < 1 || rank < 0 || rank >= world) throw new IllegalStateException("rank " + rank + " of " + world);
    }
}
