package dev.tune4j.generate;

import dev.tune4j.model.KvCache;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.Arrays;
import java.util.List;

/**
 * The one decoding path, used by the engine's thread and by {@link Generator} alike: prefill runs a prompt into its own
 * cache, a step decodes one token for every running sequence in one batched pass (rows at different positions, each
 * through its adapter). Every call runs in its own pointer scope, so native memory stays flat however long it runs.
 */
final class Decoder {
    private final LlamaModel model;

    Decoder(LlamaModel model) {
        this.model = model;
    }

    /** Runs the prompt into a fresh cache sized for the whole sequence and chooses the first token. */
    void prefill(Sequence s) {
        s.cache = model.newCache(1, s.promptLength + s.maxTokens);
        float[] logits;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            route(List.of(s));
            Tensor ids = model.compute.placeIndex(Tensors.longs(s.request.promptIds(), 1, s.promptLength)); // (1, T)
            Tensor hidden = model.forward(ids, null, null, s.cache, null);                                   // (1, T, C)
            logits = Tensors.toFloats(model.logits(hidden.narrow(1, s.promptLength - 1, 1)));                // (V)
        } finally {
            model.routing.clear();
        }
        s.choose(logits);
    }

    /** One new token for each sequence (each has its last choice pending, not yet in its cache). */
    void step(List<Sequence> running) {
        // each adapter's rows side by side: the projections then add each adapter's update to a view of its rows
        var rows = new java.util.ArrayList<>(running);
        rows.sort(java.util.Comparator.comparing(s -> s.request.adapter(), java.util.Comparator.nullsFirst(java.util.Comparator.naturalOrder())));
        int b = rows.size();
        long[] last = new long[b];
        KvCache[] caches = new KvCache[b];
        for (int i = 0; i < b; i++) {
            last[i] = rows.get(i).last();
            caches[i] = rows.get(i).cache;
        }
        float[] all;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            route(rows);
            all = Tensors.toFloats(model.logits(model.decodeRows(last, caches)));                              // (B, 1, V)
        } finally {
            model.routing.clear();
        }
        int v = all.length / b;
        for (int i = 0; i < b; i++) rows.get(i).choose(Arrays.copyOfRange(all, i * v, (i + 1) * v));
    }

    /** Prefills a new sequence and adds it to the running rows, or ends it at once when its first token finished it. */
    void join(Sequence s, List<Sequence> running) {
        prefill(s);
        if (s.finish != null) s.end(s.finish, null);
        else running.add(s);
    }

    /** Ends the sequences that finished (or were cancelled) in the last step: their slots are free for the next. */
    static void retire(List<Sequence> running) {
        for (var it = running.iterator(); it.hasNext(); ) {
            Sequence s = it.next();
            if (s.finish == null && s.cancelled) s.finish = FinishReason.CANCELLED;
            if (s.finish != null) {
                it.remove();
                s.end(s.finish, null);
            }
        }
    }

    /** Each row through its own adapter (null = the base); unrouted sequences let every enabled adapter apply. */
    private void route(List<Sequence> rows) {
        if (!rows.getFirst().routed) return;
        String[] adapters = new String[rows.size()];
        for (int i = 0; i < adapters.length; i++) adapters[i] = rows.get(i).request.adapter();
        model.routing.set(adapters);
    }
}
