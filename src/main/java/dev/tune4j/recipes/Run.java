package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import dev.tune4j.data.*;
import dev.tune4j.eval.Units;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.text.Tokenizer;
import dev.tune4j.train.*;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.*;

/**
 * One training run, for every method and stage: setup → {@link Trainer#fit} → save → report. What differs is stated by
 * a {@link Method} (what is trainable: {@link Adapters} for LoRA/QLoRA/DoRA, {@link Full} for every weight) and the
 * stage (the data and the objective: token cross-entropy for sft/pt, {@link Preference} for dpo/orpo/simpo).
 */
public final class Run {
    private Run() {}

    /** What a method states: its trainable set (the loop's seam), its reference switch, and what the run leaves behind. */
    interface Method extends Trainer.Trainable, AutoCloseable {
        double weightDecay(String name, Tensor p, double decay);

        Path save(Path out) throws IOException;

        void toReference();

        void toPolicy();

        LoraAdapter adapter(); // null for full fine-tuning

        /** A frozen copy of the starting weights, loaded on first use (full fine-tuning's KTO reference); null when the method switches adapters instead. */
        LlamaModel referenceCopy();

        long trainableCount();

        @Override
        void close();
    }

    /** The model folder's tokenizer; pre-tokenized preference data trains without one (as the golden models have none). */
    private static Tokenizer tokenizer(TrainConfig c) {
        if (java.nio.file.Files.exists(c.model().resolve("tokenizer.json")) || !c.preference()) return Tokenizer.load(c.model());
        if (c.generalFile() != null) throw new UserError(c.model() + ": no tokenizer.json, which --general-file needs to read its text");
        return null;
    }

    /** @param output the PEFT adapter folder (LoRA/QLoRA) or the model folder (full fine-tuning) */
    public record Summary(long steps, double lastLoss, double bestValLoss, double firstValLoss, double seconds, long peakRssBytes,
                          Path output, boolean stoppedEarly, long trainableParams, long predictedPeakBytes, Map<String, Double> lastMetrics) {}

    public static Summary run(TrainConfig c, PrintStream log) throws IOException {
        boolean created = !java.nio.file.Files.exists(c.out());
        try {
            return train(c, log);
        } catch (RuntimeException e) {
            if (created) RunSetup.removeIfOnlyConfig(c.out());
            throw e;
        }
    }

    private static Summary train(TrainConfig c, PrintStream log) throws IOException {
        var phases = new Phases();
        Path resumeFrom = RunSetup.prepareRunFolder(c, log);
        RunSetup.writeResolvedConfig(c, log);
        Compute compute = c.computeDtype() == null ? Compute.auto() : new Compute(Compute.auto().cuda(), c.computeDtype().equals("bfloat16"));
        boolean full = c.method().equals("full");
        try (ModelFolder folder = ModelFolder.open(c.model());
             LlamaModel model = full ? Full.load(c, folder, compute) : Adapters.load(c, folder, compute, log);
             Tokenizer tok = tokenizer(c);
             Method method = full ? Full.attach(c, model, log) : Adapters.attach(c, model, log)) {
            long eos = RunSetup.eosId(tok, model.config), pad = RunSetup.padId(tok, model.config, eos);
            // ---- the stage: data and objective ----
            MicroSource train, val;
            Objective objective;
            List<Example> samples; // prompts the report answers (validation first): SFT examples, or pairs' prompt + chosen
            dev.tune4j.plan.MemoryPlan.Estimate predicted;
            if (c.preference()) {
                var pref = Preference.setup(c, model, tok, eos, pad, method, log);
                train = pref.train();
                val = pref.val();
                objective = pref.objective();
                predicted = RunSetup.predictPeak(c, model.config, c.batchSize(), pref.longest(), pref.labelledShare(), c.method(), !model.compute.cuda(), pref.items(), log);
                samples = pref.samples();
            } else {
                Dataset ds = RunSetup.dataset(c, tok, eos, log);
                samples = ds.val.isEmpty() ? ds.train : ds.val;
                train = new Batches(ds.train, c.batchSize(), c.maxSeqLen(), c.packing(), pad, c.seed());
                val = new Batches(ds.val, c.batchSize(), c.maxSeqLen(), false, pad, c.seed());
                objective = TokenLoss.INSTANCE;
                predicted = RunSetup.predictPeak(c, model.config, ds, c.method(), !model.compute.cuda(), log);
            }
            phases.mark("load");
            Double basePerplexity = RunReport.baseline(c, model, method.adapter(), tok, eos, log); // a full fine-tune has no other moment to see its base
            if (basePerplexity != null) phases.mark("forgetting base");
            // ---- the loop ----
            long totalSteps = Trainer.totalSteps(c.maxSteps(), c.epochs(), train, c.gradAccum());
            int warmup = c.warmupSteps() > 0 ? c.warmupSteps() : LrSchedule.warmupFromRatio(c.warmupRatio(), (int) totalSteps);
            var loop = new Trainer.Loop(totalSteps, c.gradAccum(), c.maxGradNorm(), LrSchedule.of(c.scheduler(), c.lr(), warmup, (int) totalSteps),
                    c.evalSteps(), c.saveSteps(), c.keepBest(), c.keepLast(), c.loggingSteps(), c.earlyStoppingPatience(),
                    c.gradientCheckpointing(), c.lossChunk(), c.seed(), c.out(), resumeFrom, c.stage() + "/" + c.method());
            var groups = method.parameters().entrySet().stream().map(e -> new AdamW.Param(e.getValue(), method.weightDecay(e.getKey(), e.getValue(), c.weightDecay()))).toList();
            try (Optimizer opt = c.optim().equals("adamw8bit") ? new AdamW8bit(groups, 0.9, 0.999, 1e-8) : new AdamW(groups, 0.9, 0.999, 1e-8, c.optimOffload())) {
                var outcome = new Trainer(model, method, objective, train, val, opt, loop).fit(log);
                double trained = phases.mark("training");
                phases.split("training", "final validation", outcome.finalValidationSeconds());
                log.printf("%ntraining: %s, of which validation %s%n", Units.duration(trained), Units.duration(outcome.validationSeconds()));
                // ---- save and report ----
                Path output = method.save(c.out());
                phases.mark("save");
                RunReport.evaluate(c, model, tok, method.adapter(), samples, eos, basePerplexity, phases, log);
                var summary = new Summary(outcome.steps(), outcome.lastLoss(), outcome.bestValLoss(), outcome.firstValLoss(), phases.total(),
                        Memory.peakResidentBytes(), output, outcome.stoppedEarly(), method.trainableCount(), predicted.peak(), outcome.lastMetrics());
                RunReport.write(c, method.adapter(), summary, predicted.parts(), phases, log);
                RunSetup.reportPeak(predicted.peak(), summary.peakRssBytes(), log);
                log.println(phases.line());
                log.printf("done: %d steps in %.1f s; last train loss %.4f; best val loss %s; peak memory %.0f MiB; %s in %s%n",
                        outcome.steps(), phases.total(), outcome.lastLoss(), Double.isNaN(outcome.bestValLoss()) ? "-" : String.format("%.4f", outcome.bestValLoss()),
                        Memory.mib(summary.peakRssBytes()), full ? "model" : "adapter", output);
                return summary;
            }
        }
    }
}
