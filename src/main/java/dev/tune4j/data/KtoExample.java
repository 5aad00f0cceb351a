package dev.tune4j.data;

/** One unpaired KTO example, tokenized as a {@link PreferencePair}'s prompt and completion; desirable = TRL's label. */
public record KtoExample(long[] prompt, long[] completion, boolean desirable) {}
