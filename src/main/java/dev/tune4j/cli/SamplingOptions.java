package dev.tune4j.cli;

import dev.tune4j.generate.GenerationConfig;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;

/** Generation flags shared by generate and chat, named like transformers' GenerationConfig fields. */
final class SamplingOptions {
    @Option(names = "--max-new-tokens", defaultValue = "128", description = "tokens to generate at most (default ${DEFAULT-VALUE})")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 = greedy; else sample from softmax(logits / T) (default ${DEFAULT-VALUE})")
    double temperature;

    @Option(names = "--top-k", defaultValue = "0", description = "sample only from the k likeliest tokens; 0 = off")
    int topK;

    @Option(names = "--top-p", defaultValue = "1.0", description = "nucleus sampling mass; 1 = off")
    double topP;

    @Option(names = "--repetition-penalty", defaultValue = "1.0", description = "> 1 penalises tokens already in the sequence")
    double repetitionPenalty;

    @Option(names = "--seed", defaultValue = "0", description = "sampling seed (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--stop", description = "stop when the generated text contains this string (repeatable)")
    List<String> stop = new ArrayList<>();

    @Option(names = "--ignore-eos", description = "do not stop at end-of-sequence tokens")
    boolean ignoreEos;

    GenerationConfig toConfig(List<Integer> eos) {
        return new GenerationConfig(maxNewTokens, temperature, topK, topP, repetitionPenalty, seed, ignoreEos ? List.of() : eos, stop);
    }
}
