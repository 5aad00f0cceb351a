package dev.tune4j.generate;

/** A generation request: the adapter its rows go through (null = the base model), the prompt's token ids, how to sample. */
public record Request(String adapter, long[] promptIds, Sampling sampling) {}
