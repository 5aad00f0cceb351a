package dev.tune4j.data;

/**
 * One preference pair, tokenized: the prompt (chat template with the generation prompt, or the Alpaca/raw prompt) and
 * the two completions, each ending with the end-of-turn or EOS token the model should learn to write (for a chat
 * template, whatever the template writes after the prompt, as TRL takes it).
 */
public record PreferencePair(long[] prompt, long[] chosen, long[] rejected) {}
