package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import dev.tune4j.data.*;
import dev.tune4j.dist.Group;
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

    /**
     * @param peakRssBytes      the run's whole peak (loading and the end included; earlier work in the same JVM not)
     * @param trainingPeakBytes the training loop's peak, what the planner predicts
     * @param output            the PEFT adapter folder (LoRA/QLoRA) or the model folder (full fine-tuning)
     */
    public record Summary(long steps, double lastLoss, double bestValLoss, double firstValLoss, double seconds, long peakRssBytes,
                          long trainingPeakBytes, Path output, boolean stoppedEarly, long trainableParams, long predictedPeakBytes, Map<String, Double> lastMetrics) {}

    public static Summary run(TrainConfig c, PrintStream log) throws IOException {
        return run(c, log, Group.SINGLE);
    }

    /**
     * @param group the data-parallel job this process is a rank of ({@link Group#SINGLE} alone): every rank trains on
     *              its part of each batch; rank 0 alone writes the run folder and prints
     * @return the run's summary (on ranks other than 0: its steps and losses, no output folder)
     */
    public static Summary run(TrainConfig c, PrintStream log, Group group) throws IOException {
        Memory.resetPeak(); // this run's peaks, not those of earlier work in the same JVM (the demo pretrains first)
        boolean created = !java.nio.file.Files.exists(c.out());
        try {
            return train(c, group.leader() ? log : new PrintStream(java.io.OutputStream.nullOutputStream()), group);
        } catch (RuntimeException e) {
            if (created && group.leader()) RunSetup.removeIfOnlyConfig(c.out());
            throw e;
        }
    }

    private static Summary train(TrainConfig c, PrintStream log, Group group) throws IOException {
        var phases = new Phases();
        boolean leader = group.leader();
        Path resumeFrom = null;
        if (leader) {
            resumeFrom = RunSetup.prepareRunFolder(c, log);
            RunSetup.writeResolvedConfig(c, group.world(), log);
        }
        group.barrier(); // the run folder is ready (an old run replaced, the checkpoint chosen) before the other ranks read it
        if (group.world() > 1) { // workers started by hand with different settings would train different things, or hang
            double mine = (c.toMap().toString() + RunSetup.fingerprint(c, group.world())).hashCode(); // the data files' sha256 too
            double[] all = group.gather(mine);
            for (int r = 0; r < all.length; r++)
                if (all[r] != all[0])
                    throw new UserError("rank " + r + " was started with other settings or data files than rank 0 (every worker of a job needs the same flags, run file and files: compare run_config.json and run_fingerprint.json)");
        }
        if (!leader) resumeFrom = RunSetup.resumePoint(c);
        var shard = new Shard(group.rank(), group.world());
        if (group.world() > 1)
            log.printf("data parallel: %d processes (%s), global batch %d = --batch-size %d per process × %d processes × --grad-accum %d%s%n", group.world(),
                    Compute.auto().cuda() ? "NCCL" : "Gloo", c.batchSize() * group.world() * c.gradAccum(), c.batchSize(), group.world(), c.gradAccum(),
                    c.zero() > 0 ? "; ZeRO " + c.zero() : "");
        boolean full = c.method().equals("full");
        try (ModelFolder folder = ModelFolder.open(c.model());
             LlamaModel model = full ? Full.load(c, folder, compute(c, folder, log)) : Adapters.load(c, folder, compute(c, folder, log), log);
             Tokenizer tok = tokenizer(c);
             Method method = full ? Full.attach(c, model, log) : Adapters.attach(c, model, log)) {
            folder.close(); // weights copied out: unmap the files, whose pages would count in the run's RSS
            dev.tune4j.tensor.NativeHeap.trim(); // and return what loading freed (fp32 temporaries of conversions)
            // a checkpointed fp32 run of a large model returns freed activations to the system (decision 0006): −30 % peak for
            // +10 % time; the bf16-matmul path's checkpointed peak is low without it (0.2× the HF peer's), and it would cost 3× there
            if (c.gradientCheckpointing() && !model.compute.mixed() && dev.tune4j.tensor.NativeHeap.fixForLargeCheckpointedRun(model.parameterCount()) > 0)
                log.println("memory: large tensors go back to the system when freed (mmap threshold 1 MiB, decision 0006; TUNE4J_MMAP_THRESHOLD=0 keeps glibc's default)");
            long eos = RunSetup.eosId(tok, model.config), pad = RunSetup.padId(tok, model.config, eos);
            // ---- the stage: data and objective ----
            MicroSource train, val;
            Objective objective;
            List<Example> samples; // prompts the report answers (validation first): SFT examples, or pairs' prompt + chosen
            dev.tune4j.plan.MemoryPlan.Estimate predicted;
            if (c.preference()) {
                var pref = Preference.setup(c, model, tok, eos, pad, method, shard, log);
                train = pref.train();
                val = pref.val();
                objective = pref.objective();
                predicted = RunSetup.predictPeak(c, group.world(), model.config, c.batchSize(), pref.longest(), pref.labelledShare(), c.method(), !model.compute.cuda(), pref.items(), bf16Projections(model), model.compute.mixed(), model.embeddingsBf16(), log);
                samples = pref.samples();
            } else {
                Dataset ds = RunSetup.dataset(c, tok, eos, log);
                samples = ds.val.isEmpty() ? ds.train : ds.val;
                train = new Batches(ds.train, c.batchSize(), c.maxSeqLen(), c.packing(), pad, c.seed(), shard);
                val = new Batches(RunSetup.evalShare(ds.val, c, ds.train.size(), shard.world(), log), c.batchSize(), c.maxSeqLen(), false, pad, c.seed(), shard);
                objective = TokenLoss.INSTANCE;
                predicted = RunSetup.predictPeak(c, group.world(), model.config, ds, c.method(), !model.compute.cuda(), bf16Projections(model), model.compute.mixed(), model.embeddingsBf16(), log);
            }
            phases.mark("load");
            // a full fine-tune has no other moment to see its base; rank 0 alone reports on it
            Double basePerplexity = leader ? RunReport.baseline(c, model, method.adapter(), tok, eos, log) : null;
            if (basePerplexity != null) phases.mark("forgetting base");
            // The planner predicts the training phase, so its peak is measured from here, and what loading and data
            // preparation left on the heaps goes back first: G1 kept a young generation sized for tokenizing (216 MiB
            // committed for 10 MiB live in the demo), the native heap the conversions' buffers. The process's peak so far
            // stays in the run's summary.
            System.gc();
            dev.tune4j.tensor.NativeHeap.trim();
            long beforeTraining = Memory.peakResidentBytes();
            Memory.resetPeak();
            // ---- the loop ----
            long totalSteps = Trainer.totalSteps(c.maxSteps(), c.epochs(), train, c.gradAccum());
            int warmup = c.warmupSteps() > 0 ? c.warmupSteps() : LrSchedule.warmupFromRatio(c.warmupRatio(), (int) totalSteps);
            var loop = new Trainer.Loop(totalSteps, c.gradAccum(), c.maxGradNorm(), LrSchedule.of(c.scheduler(), c.lr(), warmup, (int) totalSteps),
                    c.evalSteps(), c.saveSteps(), c.keepBest(), c.keepLast(), c.loggingSteps(), c.earlyStoppingPatience(),
                    c.gradientCheckpointing(), c.lossChunk(), c.seed(), c.out(), resumeFrom, c.stage() + "/" + c.method());
            var groups = method.parameters().entrySet().stream().map(e -> new AdamW.Param(e.getValue(), method.weightDecay(e.getKey(), e.getValue(), c.weightDecay()))).toList();
            var params = List.copyOf(method.parameters().values());
            group.broadcast(params, 0); // every rank starts from rank 0's trainable weights (DDP does the same)
            var dp = DataParallel.of(group, c.zero(), params);
            try (Optimizer opt = optimizer(c, groups, dp)) {
                var outcome = new Trainer(model, method, objective, train, val, opt, loop, dp).fit(log);
                if (group.world() > 1) perRankPeak(group, predicted.peak(), log);
                long trainingPeak = Memory.peakResidentBytes(); // what the planner predicts: after loading, before the samples and the report
                if (!leader) return new Summary(outcome.steps(), outcome.lastLoss(), outcome.bestValLoss(), outcome.firstValLoss(), phases.total(),
                        Math.max(beforeTraining, trainingPeak), trainingPeak, null, outcome.stoppedEarly(), method.trainableCount(), predicted.peak(), outcome.lastMetrics());
                double trained = phases.mark("training");
                phases.split("training", "final validation", outcome.finalValidationSeconds());
                log.printf("%ntraining: %s, of which validation %s%n", Units.duration(trained), Units.duration(outcome.validationSeconds()));
                // ---- save and report ----
                Path output = method.save(c.out());
                phases.mark("save");
                RunReport.evaluate(c, model, tok, method.adapter(), samples, eos, basePerplexity, phases, log);
                var summary = new Summary(outcome.steps(), outcome.lastLoss(), outcome.bestValLoss(), outcome.firstValLoss(), phases.total(),
                        Math.max(beforeTraining, Memory.peakResidentBytes()), trainingPeak, output, outcome.stoppedEarly(), method.trainableCount(), predicted.peak(), outcome.lastMetrics());
                RunReport.write(c, method.adapter(), summary, predicted.parts(), phases, log);
                RunSetup.reportPeak(predicted.peak(), trainingPeak, summary.peakRssBytes(), log);
                log.println(phases.line());
                log.printf("done: %d steps in %.1f s; last train loss %.4f; best val loss %s; peak memory %.0f MiB; %s in %s%n",
                        outcome.steps(), phases.total(), outcome.lastLoss(), Double.isNaN(outcome.bestValLoss()) ? "-" : String.format("%.4f", outcome.bestValLoss()),
                        Memory.mib(summary.peakRssBytes()), full ? "model" : "adapter", output);
                return summary;
            }
        }
    }

    /** AdamW (8-bit or fp32), over this rank's run of the parameters only under ZeRO. */
    private static Optimizer optimizer(TrainConfig c, List<AdamW.Param> groups, DataParallel dp) {
        return c.optim().equals("adamw8bit") ? new AdamW8bit(groups, 0.9, 0.999, 1e-8) : dp.adamW(groups, c.optimOffload());
    }

    /** Which allocator the tensors come from; without tcmalloc, how to get it (decision 0012). */
    private static String allocator() {
        return dev.tune4j.tensor.NativeHeap.cachingAllocator() ? "allocator tcmalloc"
                : "allocator glibc: install libtcmalloc-minimal4 (Debian/Ubuntu) for ~30 % faster, leaner CPU training";
    }

    /** --compute-dtype, or the default for this model on this machine (Compute#of), said in one line. */
    private static Compute compute(TrainConfig c, ModelFolder folder, PrintStream log) {
        Compute compute = Compute.of(c.computeDtype(), folder.config().hiddenSize());
        if (compute.mixed()) log.printf("compute: bf16 matrix multiplies over fp32 activations (%s; %d threads; %s); --compute-dtype float32 for fp32 throughout%n",
                c.computeDtype() == null ? "this CPU has bf16 dot products" : "--compute-dtype bfloat16", org.bytedeco.pytorch.global.torch.get_num_threads(), allocator());
        return compute;
    }

    private static boolean bf16Projections(LlamaModel m) {
        return m.linears().values().stream().anyMatch(l -> l.quantized instanceof dev.tune4j.model.Bf16Weight);
    }

    /** Every rank's measured peak beside the planner's per-rank prediction (a collective: every rank calls it). */
    private static void perRankPeak(Group group, long predicted, PrintStream log) {
        double[] peaks = group.gather(Memory.peakResidentBytes());
        var sb = new StringBuilder();
        for (int r = 0; r < peaks.length; r++)
            sb.append(r == 0 ? "" : ", ").append(String.format("rank %d %.0f MiB (%+.1f %%)", r, peaks[r] / 1048576.0, 100.0 * (predicted - peaks[r]) / peaks[r]));
        log.printf("memory per rank: planner predicted %.0f MiB; measured %s%n", predicted / 1048576.0, sb);
    }
}
