package dev.tune4j.recipes;

import dev.tune4j.data.Example;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.train.*;
import me.tongfei.progressbar.ProgressBar;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * Pretraining from scratch: random weights, every parameter trained on raw text (packed rows), AdamW with weight decay
 * on matrices only, cosine schedule with 10% warmup; the result is a Hugging Face folder. setup → loop → save.
 */
public final class Pretrain {
    private Pretrain() {}

    /** @param tokenizerDir folder whose tokenizer.json / tokenizer_config.json are copied next to the weights */
    public record Settings(ModelConfig config, Path tokenizerDir, int steps, int batchSize, int seqLen, double lr, long seed) {}

    public record Summary(long steps, double firstLoss, double lastLoss, double valLoss, double seconds, double tokensPerSecond) {}

    public static Summary run(Settings s, List<Example> train, List<Example> val, Path out, PrintStream log) throws IOException {
        long t0 = System.nanoTime();
        // ---- setup ----
        try (LlamaModel model = LlamaModel.random(s.config(), s.seed(), Compute.auto())) {
            model.trainAll();
            var params = model.namedTensors();
            var groups = params.entrySet().stream()
                    .map(e -> new AdamW.Param(e.getValue(), e.getValue().dim() >= 2 ? 0.1 : 0.0)).toList(); // no decay on norms
            long pad = s.config().eosTokenIds().isEmpty() ? 0 : s.config().eosTokenIds().getFirst();
            var batches = new Batches(train, s.batchSize(), s.seqLen(), true, pad, s.seed());
            var valBatches = new Batches(val, s.batchSize(), s.seqLen(), true, pad, s.seed());
            var schedule = LrSchedule.of("cosine", s.lr(), Math.max(1, s.steps() / 10), s.steps());
            log.printf("pretraining %s from scratch: %,d parameters, %d steps × %d rows × %d tokens%n",
                    s.config().arch().className, model.parameterCount(), s.steps(), s.batchSize(), s.seqLen());
            double first = Double.NaN, last = Double.NaN;
            long tokens = 0;
            // ---- loop ----
            try (AdamW opt = new AdamW(groups, 0.9, 0.95, 1e-8);
                 ProgressBar bar = StepProgress.create("pretrain", s.steps())) {
                List<Tensor> all = List.copyOf(params.values());
                for (int step = 1; step <= s.steps(); step++) {
                    torch.manual_seed(s.seed() * 1_000_003L + step);
                    double lossSum;
                    long n = batches.predictedAt(step - 1);
                    try (PointerScope scope = new PointerScope()) {
                        var mb = batches.get(step - 1, model.compute);
                        tokens += mb.tokens();
                        lossSum = Backprop.tokenLoss(model, mb.batch(), mb.labels(), Math.max(1, n), false, 1024).loss();
                    }
                    last = lossSum / Math.max(1, n);
                    if (step == 1) first = last;
                    if (!Double.isFinite(last)) throw new IllegalStateException("pretraining diverged at step " + step + " (loss " + last + ")");
                    GradClip.clip(all, 1.0);
                    opt.step(schedule.lr(step - 1));
                    opt.zeroGrad();
                    bar.step();
                    bar.setExtraMessage(String.format(" loss %.3f", last));
                }
            }
            model.requireGrad(false);
            double valLoss = val.isEmpty() ? Double.NaN : Evaluation.run(model, valBatches).loss();
            // ---- save ----
            model.save(out, DType.F32, Long.MAX_VALUE);
            for (String f : new String[]{"tokenizer.json", "tokenizer_config.json"})
                Files.copy(s.tokenizerDir().resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            double seconds = (System.nanoTime() - t0) / 1e9;
            log.printf("pretrained in %.1f s (%.0f tokens/s): loss %.3f → %.3f, validation %.3f; saved %s%n", seconds, tokens / seconds, first, last, valLoss, out);
            return new Summary(s.steps(), first, last, valLoss, seconds, tokens / seconds);
        }
    }
}
