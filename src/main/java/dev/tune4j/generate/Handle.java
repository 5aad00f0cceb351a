package dev.tune4j.generate;

/** A submitted request. */
public interface Handle {
    /** Ends the request at the next step boundary with {@link FinishReason#CANCELLED} (idempotent; nothing after it finished). */
    void cancel();
}
