package dev.tune4j.data;

import dev.tune4j.hf.UserError;
import java.nio.file.Path;

/**
 * Where preference data comes from and how it is shaped.
 *
 * @param data         training file (.json, .jsonl)
 * @param format       record format, or null to detect it from the first record
 * @param promptStyle  the model's chat template, or the Alpaca layout (HH-RLHF transcripts: their own raw text)
 * @param maxSeqLen    prompt + completion tokens (TRL max_length); completions are cut to fit, rows whose prompt alone
 *                     fills it are dropped
 * @param maxPromptLen prompt tokens kept (its end) before maxSeqLen applies, or null for no separate limit
 * @param valRatio     share of the examples held out for validation when no valFile is given
 * @param valFile      validation file, or null
 * @param skipBadRows  count malformed records as warnings instead of failing
 * @param seed         shuffling for the split
 */
public record PreferenceDataConfig(Path data, PreferenceFormat format, Encoder.PromptStyle promptStyle, int maxSeqLen, Integer maxPromptLen,
                                   double valRatio, Path valFile, boolean skipBadRows, long seed) {
    public PreferenceDataConfig {
        if (data == null) throw new UserError("a preference data file is required");
        if (promptStyle == null) throw new UserError("prompt_style is required (template or alpaca)");
        if (maxSeqLen < 2) throw new UserError("max_seq_len must be at least 2, found " + maxSeqLen);
        if (maxPromptLen != null && (maxPromptLen < 1 || maxPromptLen >= maxSeqLen))
            throw new UserError("max_prompt_len must be in [1, max_seq_len = " + maxSeqLen + "), found " + maxPromptLen);
        if (valRatio < 0 || valRatio >= 1) throw new UserError("val_ratio must be in [0, 1), found " + valRatio);
    }
}
