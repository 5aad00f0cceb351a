package dev.tune4j.train;

import dev.tune4j.hf.UserError;
import dev.tune4j.data.KtoExample;
import dev.tune4j.data.PreferencePair;
import dev.tune4j.model.Batch;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;

import java.util.*;
import java.util.function.IntFunction;

/**
 * Micro-batches of prompt + completion rows in TRL's layouts, right-padded to the longest row, labels on the completion
 * tokens. Pairs: rows 0..B−1 prompt+chosen, B..2B−1 prompt+rejected (for ORPO the chosen rows are labelled on the prompt
 * too, marked non-completion, since its NLL reads them). KTO: rows 0..n−1 prompt_i+completion_i, then the KL rows
 * prompt_i+completion_(i−1 mod n) (TRL rotates the completions by one inside the batch). Row ids are offset + item index
 * (train and validation items share one id space, for stored reference log-probs).
 */
public final class PairBatches implements MicroSource {
    /** One row: prompt, completion, which item it comes from, and whether the prompt is labelled too. */
    private record Row(long[] prompt, long[] answer, int id, boolean labelPrompt) {}

    private final int items;
    private final EpochOrder order;
    private final long padId;
    private final IntFunction<long[]> itemTokens;        // for predictedAt: the completion tokens of an item
    private final java.util.function.Function<int[], List<Row>> layout;

    private PairBatches(int items, int batchSize, long padId, long seed, Shard shard, IntFunction<long[]> itemTokens, java.util.function.Function<int[], List<Row>> layout) {
        this.items = items;
        this.order = new EpochOrder(items, batchSize, seed, shard);
        this.padId = padId;
        this.itemTokens = itemTokens;
        this.layout = layout;
    }

    public static PairBatches pairs(List<PreferencePair> pairs, int batchSize, long padId, long seed, boolean nllOnChosen, int idOffset) {
        return pairs(pairs, batchSize, padId, seed, nllOnChosen, idOffset, Shard.ONE);
    }

    /** @param shard this process's part of each batch (data parallel: {@code batchSize} pairs per process) */
    public static PairBatches pairs(List<PreferencePair> pairs, int batchSize, long padId, long seed, boolean nllOnChosen, int idOffset, Shard shard) {
        var ps = List.copyOf(pairs);
        return new PairBatches(ps.size(), batchSize, padId, seed, shard, i -> concat(ps.get(i).chosen(), ps.get(i).rejected()), idx -> {
            var rows = new ArrayList<Row>();
            for (int i : idx) rows.add(new Row(ps.get(i).prompt(), ps.get(i).chosen(), idOffset + i, nllOnChosen));
            for (int i : idx) rows.add(new Row(ps.get(i).prompt(), ps.get(i).rejected(), idOffset + i, false));
            return rows;
        });
    }

    public static PairBatches kto(List<KtoExample> examples, int batchSize, long padId, long seed, int idOffset) {
        return kto(examples, batchSize, padId, seed, idOffset, Shard.ONE);
    }

    /** Data parallel: the KL rows rotate completions within this rank's part of the batch (as TRL under DDP). */
    public static PairBatches kto(List<KtoExample> examples, int batchSize, long padId, long seed, int idOffset, Shard shard) {
        var es = List.copyOf(examples);
        return new PairBatches(es.size(), batchSize, padId, seed, shard, i -> es.get(i).completion(), idx -> {
            var rows = new ArrayList<Row>();
            for (int i : idx) rows.add(new Row(es.get(i).prompt(), es.get(i).completion(), idOffset + i, false));
            for (int k = 0; k < idx.length; k++) // the KL rows: each prompt with the previous example's completion
                rows.add(new Row(es.get(idx[k]).prompt(), es.get(idx[(k + idx.length - 1) % idx.length]).completion(), idOffset + idx[k], false));
            return rows;
        });
    }

    /** Every token id must index the model's vocabulary (pre-tokenized data is taken as given): a named error, not a libtorch crash. */
    public static void checkIds(java.nio.file.Path file, List<PreferencePair> train, List<PreferencePair> val, List<KtoExample> kTrain, List<KtoExample> kVal, int vocab) {
        var where = new String[]{"train", "validation"};
        for (int s = 0; s < 2; s++) {
            var pairs = s == 0 ? train : val;
            for (int i = 0; i < pairs.size(); i++)
                for (long[] ids : new long[][]{pairs.get(i).prompt(), pairs.get(i).chosen(), pairs.get(i).rejected()}) check(file, where[s] + " pair " + (i + 1), ids, vocab);
            var ks = s == 0 ? kTrain : kVal;
            for (int i = 0; i < ks.size(); i++)
                for (long[] ids : new long[][]{ks.get(i).prompt(), ks.get(i).completion()}) check(file, where[s] + " example " + (i + 1), ids, vocab);
        }
    }

    private static void check(java.nio.file.Path file, String what, long[] ids, int vocab) {
        for (long id : ids)
            if (id < 0 || id >= vocab)
                throw new UserError(file + ": " + what + ": token id " + id + " is outside the model's vocabulary (0.." + (vocab - 1) + ")");
    }

    private static long[] concat(long[] a, long[] b) {
        long[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @Override
    public int perEpoch() {
        return order.perEpoch();
    }

    @Override
    public Micro get(long k, Compute c) {
        return assemble(order.at(k), c);
    }

    @Override
    public long predictedAt(long k) {
        long n = 0;
        for (int i : order.globalAt(k)) n += itemTokens.apply(i).length;
        return n;
    }

    @Override
    public double share(long k) {
        return order.share(k);
    }

    @Override
    public int inOrderCount() {
        return order.perEpoch();
    }

    @Override
    public Micro inOrder(int i, Compute c) {
        return assemble(order.inOrder(i), c);
    }

    @Override
    public boolean isEmpty() {
        return items == 0;
    }

    /** The batch of the given items (indices into the list), in the source's layout. */
    public Micro assemble(int[] idx, Compute c) {
        List<Row> rows = layout.apply(idx);
        int n = rows.size(), t = 1;
        for (Row r : rows) t = Math.max(t, r.prompt().length + r.answer().length);
        long[] ids = new long[n * t], labels = new long[n * t], mask = new long[n * t];
        boolean[] completion = new boolean[n * t];
        int[] rowIds = new int[n];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, -100);
        long tokens = 0, predicted = 0;
        for (int r = 0; r < n; r++) {
            Row row = rows.get(r);
            rowIds[r] = row.id();
            int at = r * t, plen = row.prompt().length;
            for (int i = 0; i < plen + row.answer().length; i++, at++) {
                boolean isAnswer = i >= plen;
                ids[at] = isAnswer ? row.answer()[i - plen] : row.prompt()[i];
                mask[at] = 1;
                completion[at] = isAnswer;
                if (isAnswer || (row.labelPrompt() && i > 0)) labels[at] = ids[at];
                tokens++;
                if (i > 0 && labels[at] != -100) predicted++;
            }
        }
        Batch batch = Batch.padded(c.placeIndex(Tensors.longs(ids, n, t)), c.placeIndex(Tensors.longs(mask, n, t)));
        return new Micro(batch, labels, completion, tokens, predicted, rowIds);
    }
}
