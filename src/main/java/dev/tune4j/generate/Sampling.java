package dev.tune4j.generate;

import dev.tune4j.hf.UserError;

import java.util.List;

/**
 * One request's sampling knobs, with OpenAI's (and vLLM's) names and meanings.
 *
 * @param maxTokens         new tokens at most (≥ 1)
 * @param temperature       0 = greedy; otherwise logits / temperature before sampling
 * @param topP              nucleus: the smallest set of likeliest tokens reaching p; 1 = off
 * @param topK              keep the k likeliest; ≤ 0 = off
 * @param seed              the request's own random stream (same seed, same text); null = nondeterministic
 * @param stop              up to 16 strings: the text is cut before the first match, which may span tokens
 * @param repetitionPenalty > 1 discourages tokens of the prompt and output (CTRL rule, as vLLM/transformers); 1 = off
 * @param presencePenalty   subtracted once from the logit of every token already generated (OpenAI); 0 = off
 * @param frequencyPenalty  subtracted per occurrence of a token already generated (OpenAI); 0 = off
 * @param ignoreEos         keep going past end-of-sequence tokens (vLLM)
 * @param eosTokenIds       tokens that end the sequence (kept in the output, finish reason "stop")
 */
public record Sampling(int maxTokens, double temperature, double topP, int topK, Long seed, List<String> stop,
                       double repetitionPenalty, double presencePenalty, double frequencyPenalty, boolean ignoreEos, List<Integer> eosTokenIds) {
    public Sampling {
        if (maxTokens < 1) throw new UserError("max_tokens must be >= 1, found " + maxTokens);
        if (!(temperature >= 0 && Double.isFinite(temperature))) throw new UserError("temperature must be a finite number >= 0, found " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new UserError("top_p must be in (0, 1], found " + topP);
        if (!(repetitionPenalty > 0 && Double.isFinite(repetitionPenalty))) throw new UserError("repetition_penalty must be > 0, found " + repetitionPenalty);
        if (!(Math.abs(presencePenalty) <= 2)) throw new UserError("presence_penalty must be in [-2, 2], found " + presencePenalty);
        if (!(Math.abs(frequencyPenalty) <= 2)) throw new UserError("frequency_penalty must be in [-2, 2], found " + frequencyPenalty);
        stop = stop == null ? List.of() : stop.stream().filter(s -> !s.isEmpty()).toList();
        if (stop.size() > 16) throw new UserError("stop: at most 16 strings, found " + stop.size());
        eosTokenIds = eosTokenIds == null ? List.of() : List.copyOf(eosTokenIds);
    }

    public static Sampling greedy(int maxTokens, List<Integer> eosTokenIds) {
        return new Sampling(maxTokens, 0, 1, 0, null, List.of(), 1, 0, 0, false, eosTokenIds);
    }

    /** The CLI's settings ({@link GenerationConfig}) as a request's. */
    public static Sampling of(GenerationConfig c) {
        return new Sampling(Math.max(1, c.maxNewTokens()), c.temperature(), c.topP(), c.topK(), c.seed(), c.stopStrings(), c.repetitionPenalty(), 0, 0, false, c.eosTokenIds());
    }
}
