package dev.tune4j.generate;

import dev.tune4j.hf.UserError;

import java.util.List;

/**
 * How to pick tokens, with transformers' meaning for each knob.
 *
 * @param maxNewTokens      tokens to generate at most (default 128)
 * @param temperature       0 = greedy (argmax); otherwise logits / temperature before sampling (default 0)
 * @param topK              keep only the k most likely tokens; 0 = off (default 0)
 * @param topP              nucleus: keep the smallest set of likeliest tokens whose probability reaches p; 1 = off (default 1)
 * @param repetitionPenalty > 1 discourages tokens already in the sequence (CTRL rule: divide positive, multiply negative logits); 1 = off
 * @param seed              sampling seed (default 0): the same seed gives the same text
 * @param eosTokenIds       stop after generating any of these (kept in the output, as transformers does)
 * @param stopStrings       stop once the decoded new text contains any of these (the text is cut before it)
 */
public record GenerationConfig(int maxNewTokens, double temperature, int topK, double topP, double repetitionPenalty, long seed,
                               List<Integer> eosTokenIds, List<String> stopStrings) {
    public GenerationConfig {
        if (maxNewTokens < 0) throw new UserError("max_new_tokens must be >= 0, found " + maxNewTokens);
        if (temperature < 0) throw new UserError("temperature must be >= 0, found " + temperature);
        if (topK < 0) throw new UserError("top_k must be >= 0, found " + topK);
        if (!(topP > 0 && topP <= 1)) throw new UserError("top_p must be in (0, 1], found " + topP);
        if (!(repetitionPenalty > 0)) throw new UserError("repetition_penalty must be > 0, found " + repetitionPenalty);
        eosTokenIds = List.copyOf(eosTokenIds);
        stopStrings = List.copyOf(stopStrings);
    }

    public static GenerationConfig greedy(int maxNewTokens) {
        return new GenerationConfig(maxNewTokens, 0, 0, 1, 1, 0, List.of(), List.of());
    }

    public GenerationConfig withEos(List<Integer> eos) {
        return new GenerationConfig(maxNewTokens, temperature, topK, topP, repetitionPenalty, seed, eos, stopStrings);
    }

    public boolean greedyDecoding() {
        return temperature == 0;
    }
}
