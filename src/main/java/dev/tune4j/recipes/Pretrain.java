package dev.tune4j.recipes;

import dev.tune4j.data.Example;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.train.*;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Pretraining from scratch: random weights, every parameter trained on raw text (packed rows), AdamW with weight decay
 * on matrices only, cosine schedule with 10% warmup; the result is a Hugging Face folder. setup → loop → save.
 */
public final class Pretrain {
    private Pretrain() {}

    /** @param tokenizerDir folder whose tokenizer.json / tokenizer_config.json are copied next to the weights */
    public record Settings(ModelConfig config, Path tokenizerDir, int steps, int batchSize, int seqLen, double lr, long seed) {}

    public record Summary(long steps, double firstLoss, double lastLoss, double valLoss, double seconds) {}

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
            Path runDir = out.resolveSibling(out.getFileName() + "-run"); // metrics and the last checkpoint, beside the model folder
            var loop = new Trainer.Loop(s.steps(), 1, 1.0, schedule, 0, 0, 0, 1, 1, 0, false, TrainConfig.LOSS_CHUNK, s.seed(), runDir, null, "pretrain");
            var trainable = new Trainer.Trainable() {
                public LinkedHashMap<String, Tensor> parameters() {
                    return params;
                }

                public void train(boolean on) {
                }

                public void saveInto(Path dir) {
                }
            };
            // ---- loop ----
            Trainer.Outcome o;
            try (AdamW opt = new AdamW(groups, 0.9, 0.95, 1e-8)) {
                o = new Trainer(model, trainable, TokenLoss.INSTANCE, batches, new Batches(List.of(), 1, 1, false, pad, 0), opt, loop).fit(log);
            }
            model.requireGrad(false);
            double valLoss = val.isEmpty() ? Double.NaN : Evaluation.run(model, valBatches).loss();
            // ---- save ----
            model.save(out, DType.F32, Long.MAX_VALUE);
            for (String f : new String[]{"tokenizer.json", "tokenizer_config.json"})
                Files.copy(s.tokenizerDir().resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            double seconds = (System.nanoTime() - t0) / 1e9;
            double first = firstLoss(runDir);
            log.printf("pretrained in %.1f s: loss %.3f → %.3f, validation %.3f; saved %s%n", seconds, first, o.lastLoss(), valLoss, out);
            return new Summary(o.steps(), first, o.lastLoss(), valLoss, seconds);
        }
    }

    private static double firstLoss(Path runDir) throws IOException {
        var lines = Files.readAllLines(runDir.resolve("metrics.jsonl"));
        return lines.isEmpty() ? Double.NaN : new com.fasterxml.jackson.databind.ObjectMapper().readTree(lines.getFirst()).get("loss").asDouble();
    }
}
