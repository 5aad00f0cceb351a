package dev.tune4j.data;

import dev.tune4j.hf.UserError;
import java.nio.file.Path;

/**
 * Where training data comes from and how it is shaped.
 *
 * @param data        training file (.json, .jsonl, .txt)
 * @param format      record format, or null to detect it from the first record
 * @param promptStyle the model's chat template (default) or the Alpaca layout
 * @param maxSeqLen   tokens per example (or per packed row); longer examples are cut (default 512)
 * @param valRatio    share of the records held out for validation when no valFile is given (default 0.1)
 * @param valFile     validation file, or null
 * @param mixFile     general text mixed into training (against forgetting), or null
 * @param mixRatio    share of the training examples drawn from mixFile (default 0)
 * @param skipBadRows count malformed records as warnings instead of failing
 * @param seed        shuffling for the split and the mix
 */
public record DataConfig(Path data, Format format, Encoder.PromptStyle promptStyle, int maxSeqLen, double valRatio, Path valFile,
                         Path mixFile, double mixRatio, boolean skipBadRows, long seed) {
    public DataConfig {
        if (maxSeqLen < 2) throw new UserError("max_seq_len must be at least 2, found " + maxSeqLen);
        if (valRatio < 0 || valRatio >= 1) throw new UserError("val_ratio must be in [0, 1), found " + valRatio);
        if (mixRatio < 0 || mixRatio >= 1) throw new UserError("mix_ratio must be in [0, 1), found " + mixRatio);
        if (mixRatio > 0 && mixFile == null) throw new UserError("mix_ratio needs a mix file");
    }
}
