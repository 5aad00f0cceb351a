package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import dev.tune4j.generate.GenerationConfig;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;

/** Generation flags shared by generate and chat, named like transformers' GenerationConfig fields. */
final class SamplingOptions {
    static final int DEFAULT_MAX_NEW_TOKENS = 128;

    @Option(names = "--max-new-tokens", description = "tokens to generate at most, within the model's context (max_position_embeddings minus the prompt; "
            + "default 128, or what the context leaves)")
    Integer maxNewTokens;

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

    /** The sampling flags by name (exit 2 before a model is loaded). */
    void check() {
        if (maxNewTokens != null) Limits.positive("--max-new-tokens", maxNewTokens);
        Limits.nonNegative("--temperature", temperature);
        Limits.nonNegative("--top-k", topK);
        Limits.inRange("--top-p", topP, 0, false, 1, true);
        Limits.positive("--repetition-penalty", repetitionPenalty);
    }

    /**
     * The generation config for a prompt of promptLength tokens in a context of context positions: an explicit --max-new-tokens
     * beyond what the context leaves is an error (cut to it with a note when cut is set: chat's growing conversation); the default
     * is cut to it, with a note on stderr.
     */
    GenerationConfig toConfig(List<Integer> eos, int promptLength, int context, boolean cut) {
        check();
        int room = context - promptLength;
        if (room < 1) throw new UserError("the prompt's " + promptLength + " tokens fill the model's context of " + context
                + " positions (max_position_embeddings): no room to generate");
        int n;
        if (maxNewTokens != null && !(cut && maxNewTokens > room)) n = (int) Limits.inRange("--max-new-tokens", maxNewTokens, 1, room,
                "max_position_embeddings " + context + " minus the prompt's " + promptLength + " tokens");
        else {
            int asked = maxNewTokens != null ? maxNewTokens : DEFAULT_MAX_NEW_TOKENS;
            n = Math.min(asked, room);
            if (n < asked) System.err.println("note: generating at most " + n + " tokens, what the model's context of " + context
                    + " leaves after the prompt's " + promptLength + " (--max-new-tokens sets it)");
        }
        return new GenerationConfig(n, temperature, topK, topP, repetitionPenalty, seed, ignoreEos ? List.of() : eos, stop);
    }
}
