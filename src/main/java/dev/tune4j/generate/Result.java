package dev.tune4j.generate;

/** A finished request: the new token ids, the new text (cut before a stop string), why it ended, its token counts. */
public record Result(long[] tokenIds, String text, FinishReason finish, Usage usage) {}
