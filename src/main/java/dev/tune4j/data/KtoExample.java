package dev.tune4j.data;

/** One unpaired KTO example, tokenized: a prompt, a completion, and whether that completion is desirable. */
public record KtoExample(long[] prompt, long[] completion, boolean desirable) {}
