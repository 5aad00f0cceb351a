package dev.tune4j.train;

import dev.tune4j.data.PreferencePair;
import dev.tune4j.model.Batch;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;

import java.util.*;

/**
 * Micro-batches of preference pairs in TRL's layout: rows 0..B−1 are prompt+chosen, rows B..2B−1 prompt+rejected, all
 * right-padded to the longest row; labels on the completion tokens. For ORPO the chosen rows are labelled on the prompt
 * too (its NLL term reads them) and marked as non-completion there. Pairs are shuffled per epoch with seed + epoch, so
 * micro-batch k is a pure function of (seed, k).
 */
public final class PairBatches implements MicroSource {
    private final List<PreferencePair> pairs;
    private final int batchSize;
    private final long seed, padId;
    private final boolean nllOnChosen;
    private final int idOffset; // row ids are offset + pair index (train and validation pairs share one id space)
    private int cachedEpoch = -1;
    private List<Integer> order;

    public PairBatches(List<PreferencePair> pairs, int batchSize, long padId, long seed, boolean nllOnChosen) {
        this(pairs, batchSize, padId, seed, nllOnChosen, 0);
    }

    public PairBatches(List<PreferencePair> pairs, int batchSize, long padId, long seed, boolean nllOnChosen, int idOffset) {
        this.idOffset = idOffset;
        this.pairs = List.copyOf(pairs);
        this.batchSize = batchSize;
        this.padId = padId;
        this.seed = seed;
        this.nllOnChosen = nllOnChosen;
    }

    @Override
    public int perEpoch() {
        return (pairs.size() + batchSize - 1) / batchSize;
    }

    private int[] indicesAt(long k) {
        int epoch = (int) (k / perEpoch()), idx = (int) (k % perEpoch());
        if (epoch != cachedEpoch) {
            order = new ArrayList<>();
            for (int i = 0; i < pairs.size(); i++) order.add(i);
            Collections.shuffle(order, new Random(seed + epoch));
            cachedEpoch = epoch;
        }
        return order.subList(idx * batchSize, Math.min(pairs.size(), (idx + 1) * batchSize)).stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public Micro get(long k, Compute c) {
        return assemble(indicesAt(k), c);
    }

    @Override
    public long predictedAt(long k) {
        long n = 0;
        for (int i : indicesAt(k)) n += pairs.get(i).chosen().length + pairs.get(i).rejected().length;
        return n;
    }

    @Override
    public int inOrderCount() {
        return perEpoch();
    }

    @Override
    public Micro inOrder(int i, Compute c) {
        return assemble(java.util.stream.IntStream.range(i * batchSize, Math.min(pairs.size(), (i + 1) * batchSize)).toArray(), c);
    }

    @Override
    public boolean isEmpty() {
        return pairs.isEmpty();
    }

    /** The batch of the given pairs (indices into the list), in TRL's chosen-then-rejected layout. */
    public Micro assemble(int[] idx, Compute c) {
        int b = idx.length, rows = 2 * b, t = 1;
        for (int i : idx) t = Math.max(t, pairs.get(i).prompt().length + Math.max(pairs.get(i).chosen().length, pairs.get(i).rejected().length));
        long[] ids = new long[rows * t], labels = new long[rows * t], mask = new long[rows * t];
        boolean[] completion = new boolean[rows * t];
        int[] rowIds = new int[rows];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, -100);
        long tokens = 0, predicted = 0;
        for (int r = 0; r < rows; r++) {
            var p = pairs.get(idx[r % b]);
            long[] answer = r < b ? p.chosen() : p.rejected();
            rowIds[r] = idOffset + idx[r % b];
            int at = r * t;
            for (int i = 0; i < p.prompt().length + answer.length; i++, at++) {
                boolean isAnswer = i >= p.prompt().length;
                ids[at] = isAnswer ? answer[i - p.prompt().length] : p.prompt()[i];
                mask[at] = 1;
                completion[at] = isAnswer;
                if (isAnswer || (nllOnChosen && r < b && i > 0)) labels[at] = ids[at];
                tokens++;
                if (i > 0 && labels[at] != -100) predicted++;
            }
        }
        Batch batch = Batch.padded(c.placeIndex(Tensors.longs(ids, rows, t)), c.placeIndex(Tensors.longs(mask, rows, t)));
        return new Micro(batch, labels, completion, tokens, predicted, rowIds);
    }
}
