package dev.tune4j.data;

/** One preference pair, tokenized: the prompt and the two completions (each ending with the token the model should learn to stop on). */
public record PreferencePair(long[] prompt, long[] chosen, long[] rejected) {}
