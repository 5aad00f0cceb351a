package dev.tune4j.eval;

import dev.tune4j.data.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.text.Tokenizer;
import dev.tune4j.train.Batches;
import dev.tune4j.train.Evaluation;

import java.nio.file.Path;

/** Loss and perplexity of a model on a data file (completion-only for instruction data, every token for raw text). */
public final class Perplexity {
    private Perplexity() {}

    public static Evaluation.Result of(LlamaModel m, Tokenizer tok, Path file, Format format, Encoder.PromptStyle style, int maxSeqLen,
                                       int batchSize, long eos) {
        var ds = Dataset.load(new DataConfig(file, format, style, maxSeqLen, 0, null, null, 0, false, 0), tok, eos);
        return Evaluation.run(m, new Batches(ds.train, batchSize, maxSeqLen, false, eos, 0), dev.tune4j.train.TokenLoss.INSTANCE, dev.tune4j.train.TrainConfig.LOSS_CHUNK, "perplexity of " + file.getFileName());
    }

    /** Perplexity on general text with and without the fine-tune applied by {@code applyTune} (between the two passes). */
    public static Forgetting forgetting(LlamaModel m, Tokenizer tok, Path general, int maxSeqLen, long eos, double threshold, Runnable applyTune) {
        var base = of(m, tok, general, Format.TEXT, Encoder.PromptStyle.ALPACA, maxSeqLen, 4, eos);
        applyTune.run();
        var tuned = of(m, tok, general, Format.TEXT, Encoder.PromptStyle.ALPACA, maxSeqLen, 4, eos);
        return new Forgetting(base.perplexity(), tuned.perplexity(), threshold, base.tokens());
    }
}
