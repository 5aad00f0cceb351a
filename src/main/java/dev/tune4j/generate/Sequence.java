package dev.tune4j.generate;

import dev.tune4j.model.KvCache;

import java.util.Arrays;

/** One request in flight: its tokens, its own KV cache, its sampler and text stream, and whether it is done. */
final class Sequence {
    final Request request;
    final Listener listener;
    /** False for the CLI's single-sequence path, where every enabled adapter applies (no per-row routing). */
    final boolean routed;
    final int promptLength, maxTokens;
    final long[] tokens;
    final Sampler sampler;
    final TextStream text;
    int length;
    KvCache cache;
    volatile boolean cancelled;
    FinishReason finish;

    Sequence(Request request, Listener listener, boolean routed, java.util.function.Function<long[], String> detokenizer, Sampler sampler) {
        this.request = request;
        this.listener = listener;
        this.routed = routed;
        this.promptLength = request.promptIds().length;
        this.maxTokens = request.sampling().maxTokens();
        this.tokens = Arrays.copyOf(request.promptIds(), promptLength + maxTokens);
        this.length = promptLength;
        this.sampler = sampler;
        this.text = new TextStream(detokenizer, request.sampling().stop());
    }

    /** The last chosen token: the next step's input. */
    long last() {
        return tokens[length - 1];
    }

    int generated() {
        return length - promptLength;
    }

    /** Chooses the next token from its logits, hands out what text it can, and decides whether the sequence is done. */
    void choose(float[] logits) {
        int next = sampler.next(logits, tokens, length, promptLength);
        tokens[length++] = next;
        String delta = text.add(next);
        listener.onDelta(delta, new long[]{next});
        Sampling s = request.sampling();
        if (!s.ignoreEos() && s.eosTokenIds().contains(next) || text.stopped()) finish = FinishReason.STOP;
        else if (generated() >= maxTokens) finish = FinishReason.LENGTH;
        else if (cancelled) finish = FinishReason.CANCELLED;
    }

    /** Ends the sequence: the held-back text, then the finish (once), and the cache is freed. */
    void end(FinishReason reason, Throwable error) {
        if (cache != null) {
            cache.close();
            cache = null;
        }
        finish = reason;
        if (reason != FinishReason.ERROR) {
            String tail = text.finish();
            if (!tail.isEmpty()) listener.onDelta(tail, new long[0]);
        }
        listener.onFinish(reason, new Usage(promptLength, generated()), error);
    }

    long[] output() {
        return Arrays.copyOfRange(tokens, promptLength, length);
    }
}
