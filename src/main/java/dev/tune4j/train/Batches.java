package dev.tune4j.train;

import dev.tune4j.data.Example;
import dev.tune4j.data.Packing;
import dev.tune4j.model.Batch;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;

import java.util.*;

/**
 * The micro-batches of a run, in a fixed order: rows (one example each, or packed) are shuffled per epoch with
 * seed + epoch, then cut into batches. Micro-batch k is a pure function of (seed, k), so a resumed run continues with
 * exactly the data an uninterrupted run would have seen.
 */
public final class Batches implements MicroSource {
    private final List<Packing.RowData> rows;
    private final long padId;
    private final boolean packed;
    private final EpochOrder order;
    private final int[] byLength; // evaluation visits rows shortest first: batches of like lengths pad little

    public Batches(List<Example> examples, int batchSize, int maxSeqLen, boolean packing, long padId, long seed) {
        this(examples, batchSize, maxSeqLen, packing, padId, seed, Shard.ONE);
    }

    /** @param shard this process's part of each batch (data parallel: {@code batchSize} is per process) */
    public Batches(List<Example> examples, int batchSize, int maxSeqLen, boolean packing, long padId, long seed, Shard shard) {
        this.padId = padId;
        this.packed = packing;
        this.rows = packing ? Packing.pack(examples, maxSeqLen, padId)
                : examples.stream().map(e -> Packing.padded(e, e.length(), padId)).toList();
        this.order = new EpochOrder(rows.size(), batchSize, seed, shard);
        this.byLength = java.util.stream.IntStream.range(0, rows.size()).boxed()
                .sorted(Comparator.comparingInt(i -> rows.get(i).length())).mapToInt(Integer::intValue).toArray();
    }

    @Override
    public int perEpoch() {
        return order.perEpoch();
    }

    @Override
    public Micro get(long k, Compute c) {
        return assemble(rowsAt(k), c);
    }

    /** Over every rank's rows: the step's loss is divided by the global count of supervised tokens. */
    @Override
    public long predictedAt(long k) {
        long n = 0;
        for (int r : order.globalAt(k))
            for (int i = 1; i < rows.get(r).length(); i++) if (rows.get(r).labels()[i] != -100) n++;
        return n;
    }

    @Override
    public double share(long k) {
        return order.share(k);
    }

    private List<Packing.RowData> rowsAt(long k) {
        return Arrays.stream(order.at(k)).mapToObj(rows::get).toList();
    }

    @Override
    public int inOrderCount() {
        return order.perEpoch();
    }

    @Override
    public Micro inOrder(int i, Compute c) {
        return assemble(Arrays.stream(order.inOrder(i)).mapToObj(j -> rows.get(byLength[j])).toList(), c);
    }

    @Override
    public boolean isEmpty() {
        return rows.isEmpty();
    }

    public Micro assemble(List<Packing.RowData> chosen, Compute c) {
        int t = chosen.stream().mapToInt(Packing.RowData::length).max().orElse(1), b = chosen.size();
        long[] ids = new long[b * t], labels = new long[b * t], pos = new long[b * t], seg = new long[b * t], mask = new long[b * t];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, -100);
        long tokens = 0, predicted = 0;
        for (int r = 0; r < b; r++) {
            var row = chosen.get(r);
            for (int i = 0; i < row.length(); i++) {
                int at = r * t + i;
                ids[at] = row.ids()[i];
                labels[at] = row.labels()[i];
                pos[at] = row.positions()[i];
                seg[at] = row.segments()[i];
                mask[at] = row.segments()[i] == 0 ? 0 : 1;
                if (mask[at] == 1) tokens++;
                if (i > 0 && labels[at] != -100) predicted++;
            }
        }
        Batch batch = packed
                ? Batch.packed(c.placeIndex(Tensors.longs(ids, b, t)), c.placeIndex(Tensors.longs(pos, b, t)), c.placeIndex(Tensors.longs(seg, b, t)))
                : Batch.padded(c.placeIndex(Tensors.longs(ids, b, t)), c.placeIndex(Tensors.longs(mask, b, t)));
        return new Micro(batch, labels, null, tokens, predicted, null);
    }
}
