package dev.tune4j.generate;

/** Receives a request's output. Called on the engine thread: must not block (hand the data to a queue). */
public interface Listener {
    /**
     * New text since the last call and the token ids chosen since. Text is held back while it may be an incomplete UTF-8
     * character or the start of a stop string, so it can be "" while ids arrive; the texts concatenate to the final text.
     */
    void onDelta(String text, long[] tokenIds);

    /** Exactly once per request; {@code error} is non-null only for {@link FinishReason#ERROR}. */
    void onFinish(FinishReason reason, Usage usage, Throwable error);
}
