package dev.tune4j.train;

import dev.tune4j.model.LlamaModel;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.*;

/**
 * The one training loop every method runs (LoRA, QLoRA, DoRA, full fine-tuning, pretraining; SFT, continued
 * pre-training and the preference stages), and the one step {@code bench train} times. A recipe hands it what differs —
 * the trainable set, the objective and the data — and the loop owns the rest: accumulation, clipping, optimizer and
 * schedule, evaluation cadence, early stopping, checkpoints and exact resume, the divergence stop, metrics.jsonl,
 * TensorBoard and progress. A step is llm.c's five calls: next batch, forward, backward (both in {@link Backprop}),
 * clip, update.
 */
public final class Trainer {
    /**
     * What is trained: parameters by the names checkpoints store them under, a training switch (dropout), and what a
     * checkpoint keeps beside them (a PEFT adapter folder; nothing for full fine-tuning, whose weights are the state).
     */
    public interface Trainable {
        LinkedHashMap<String, Tensor> parameters();

        void train(boolean on);

        void saveInto(Path checkpointDir) throws IOException;
    }

    /**
     * How the loop runs.
     *
     * @param runDir null for a loop without checkpoints and logs (benchmarks)
     * @param resume the checkpoint folder to continue from (chosen and checked by the caller), or null
     */
    public record Loop(long totalSteps, int gradAccum, double maxGradNorm, LrSchedule schedule, int evalSteps, int saveSteps,
                       int keepBest, int keepLast, int loggingSteps, int earlyStoppingPatience, boolean checkpointing, int lossChunk,
                       long seed, Path runDir, Path resume, String task) {}

    /** Thrown when the loss stops being a number; the last checkpoint written stays untouched. */
    public static final class Diverged extends RuntimeException {
        Diverged(String message) {
            super(message);
        }
    }

    /**
     * How a run ended.
     *
     * @param validationSeconds      time spent in every validation pass of the run (before, during and at the end)
     * @param finalValidationSeconds of which the pass after the last step (the run log names it as its own phase)
     */
    public record Outcome(long steps, double lastLoss, double bestValLoss, double firstValLoss, boolean stoppedEarly, Map<String, Double> lastMetrics,
                          double validationSeconds, double finalValidationSeconds) {}

    /** One optimizer step. */
    public record Step(double loss, double gradNorm, double lr, long tokens, long nextMicro, Map<String, Double> metrics, double seconds) {}

    private final LlamaModel model;
    private final Trainable trainable;
    private final Objective objective;
    private final MicroSource train, val;
    private final Optimizer opt;
    private final Loop loop;
    private final List<Tensor> params;
    private final DataParallel dp;

    public Trainer(LlamaModel model, Trainable trainable, Objective objective, MicroSource train, MicroSource val, Optimizer opt, Loop loop) {
        this(model, trainable, objective, train, val, opt, loop, DataParallel.NONE);
    }

    /**
     * @param train, val this process's shard of the data (data parallel), whose global token counts normalise the loss
     * @param dp         the process group's seam: gradients, losses, metrics and evaluations summed over the ranks
     */
    public Trainer(LlamaModel model, Trainable trainable, Objective objective, MicroSource train, MicroSource val, Optimizer opt, Loop loop, DataParallel dp) {
        this.dp = dp;
        this.model = model;
        this.trainable = trainable;
        this.objective = objective;
        this.train = train;
        this.val = val;
        this.opt = opt;
        this.loop = loop;
        this.params = List.copyOf(trainable.parameters().values());
    }

    /** Steps of a run: max-steps when given, else epochs over the data in optimizer steps. */
    public static long totalSteps(int maxSteps, int epochs, MicroSource train, int gradAccum) {
        return maxSteps > 0 ? maxSteps : (long) Math.ceil((double) epochs * train.perEpoch() / gradAccum);
    }

    /** Optimizer step number {@code step} (1-based), reading micro-batches from {@code micro} on. */
    public Step step(long step, long micro) {
        long start = System.nanoTime();
        // dropout masks depend on the step (exact resume) and the rank (each rank's rows get their own masks)
        torch.manual_seed(loop.seed() * 1_000_003L + step + dp.group().rank() * 1_000_000_007L);
        long predicted = 0;
        for (int k = 0; k < loop.gradAccum(); k++) predicted += train.predictedAt(micro + k); // over every rank's rows
        double loss = 0, tokens = 0;
        var metrics = new TreeMap<String, Double>();
        for (int k = 0; k < loop.gradAccum(); k++, micro++) {
            double share = train.share(micro), scale = objective.scale(predicted, loop.gradAccum(), share);
            try (PointerScope s = new PointerScope()) {
                Micro mb = train.get(micro, model.compute);
                tokens += mb.tokens();
                var r = Backprop.run(model, mb, objective, scale, loop.checkpointing(), loop.lossChunk());
                loss += r.loss();
                r.metrics().forEach((name, v) -> metrics.merge(name, v * share / loop.gradAccum(), Double::sum));
            }
        }
        if (!dp.group().single()) { // every rank's part of the loss and metrics, summed: every rank sees the global step
            double[] sums = dp.group().sum(loss, tokens);
            loss = sums[0];
            tokens = sums[1];
            var global = dp.group().sum(metrics);
            metrics.clear();
            metrics.putAll(global);
        }
        if (!Double.isFinite(loss)) {
            opt.zeroGrad();
            throw new Diverged("loss became " + loss + " at step " + step + "; stopped without updating the weights. " + lastCheckpointNote() + " (try a lower --lr)");
        }
        dp.reduceGradients(params);
        double gradNorm = dp.clip(params, loop.maxGradNorm());
        double lr = loop.schedule().lr((int) step - 1);
        opt.step(lr);
        opt.zeroGrad();
        return new Step(loss, gradNorm, lr, (long) tokens, micro, metrics, (System.nanoTime() - start) / 1e9);
    }

    private String lastCheckpointNote() {
        try {
            Path last = loop.runDir() == null ? null : new Checkpoints(loop.runDir(), loop.keepBest(), loop.keepLast()).latest();
            return last == null ? "No checkpoint was written yet." : "Last good checkpoint: " + last;
        } catch (IOException e) {
            return "";
        }
    }

    public Evaluation.Result evaluate() {
        trainable.train(false);
        try {
            return Evaluation.run(model, val, objective, loop.lossChunk(), "validation", dp.group());
        } finally {
            trainable.train(true);
        }
    }

    /** The whole run: resume, validation before, the steps with their cadence, the last checkpoint. */
    public Outcome fit(PrintStream log) throws IOException {
        var named = trainable.parameters();
        var ckpt = new Checkpoints(loop.runDir(), loop.keepBest(), loop.keepLast());
        long step = 0, micro = 0;
        double best = Double.NaN, firstVal = Double.NaN, lastLoss = Double.NaN, valSeconds = 0, finalValSeconds = 0;
        int noImprovement = 0;
        Path resumeFrom = loop.resume();
        if (resumeFrom != null) {
            var st = Checkpoints.load(resumeFrom, named, opt);
            step = st.step();
            micro = st.microBatches();
            best = st.bestValLoss();
            noImprovement = st.evalsWithoutImprovement();
            log.printf("resumed from %s at step %d%n", resumeFrom, step);
        }
        if (!val.isEmpty() && step == 0) {
            long t = System.nanoTime();
            var v = evaluate();
            valSeconds += (System.nanoTime() - t) / 1e9;
            firstVal = v.loss();
            log.printf("validation before training: loss %.4f%s%n", firstVal, describe(v));
        }
        boolean stoppedEarly = false;
        Map<String, Double> lastMetrics = Map.of();
        trainable.train(true);
        boolean leader = dp.group().leader(); // only rank 0 writes logs and checkpoints
        try (Metrics metrics = leader ? new Metrics(loop.runDir().resolve("metrics.jsonl"), resumeFrom != null) : null;
             TensorBoard tb = leader ? new TensorBoard(loop.runDir().resolve("tensorboard")) : null;
             StepProgress bar = StepProgress.training(loop.task(), loop.totalSteps())) {
            bar.stepTo(step);
            while (step < loop.totalSteps()) {
                ExitGate.enter(); // a SIGTERM lets the step under way finish (and its checkpoint be written) before the JVM exits
                try {
                    step++;
                    Step s = step(step, micro);
                    micro = s.nextMicro();
                    lastLoss = s.loss();
                    lastMetrics = s.metrics();
                    var rec = Metrics.step(step, (double) micro / train.perEpoch(), s.loss(), s.lr(), s.gradNorm(), s.tokens() / s.seconds());
                    rec.put("rss_mib", Math.round(dev.tune4j.tensor.Memory.mib(dev.tune4j.tensor.Memory.residentBytes()))); // one read of /proc: the report's memory curve
                    rec.put("peak_rss_mib", Math.round(dev.tune4j.tensor.Memory.mib(dev.tune4j.tensor.Memory.peakResidentBytes()))); // the high-water mark so far: which phase set the peak
                    s.metrics().forEach((k, v) -> { if (Double.isFinite(v)) rec.put(k, Metrics.round(v, 6)); }); // a metric with no rows (KTO, one label) is left out
                    bar.step();
                    bar.extra(String.format(" loss %.4f lr %.2e %.0f tok/s", s.loss(), s.lr(), s.tokens() / s.seconds()));

                    boolean epochEnd = micro % train.perEpoch() < loop.gradAccum();
                    boolean evalNow = !val.isEmpty() && (step == loop.totalSteps() || (loop.evalSteps() > 0 ? step % loop.evalSteps() == 0 : epochEnd));
                    double valLoss = Double.NaN;
                    if (evalNow) {
                        long t = System.nanoTime();
                        var v = evaluate();
                        double took = (System.nanoTime() - t) / 1e9;
                        valSeconds += took;
                        if (step == loop.totalSteps()) finalValSeconds = took;
                        valLoss = v.loss();
                        rec.put("val_loss", Metrics.round(valLoss, 6));
                        if (!objective.needsLogps()) rec.put("val_perplexity", Metrics.round(Math.exp(valLoss), 4));
                        v.metrics().forEach((k, x) -> { if (Double.isFinite(x)) rec.put("eval_" + k, Metrics.round(x, 6)); });
                        if (Double.isNaN(best) || valLoss < best) {
                            best = valLoss;
                            noImprovement = 0;
                        } else noImprovement++;
                        log.printf("%nstep %d: val loss %.4f (best %.4f)%s%n", step, valLoss, best, describe(v));
                    }
                    if (leader && (step % loop.loggingSteps() == 0 || evalNow)) metrics.log(rec, tb);
                    boolean stopNow = loop.earlyStoppingPatience() > 0 && noImprovement >= loop.earlyStoppingPatience();
                    if ((loop.saveSteps() > 0 && step % loop.saveSteps() == 0) || step == loop.totalSteps() || stopNow) {
                        var state = new Checkpoints.State(step, micro, (double) micro / train.perEpoch(), valLoss, best, noImprovement);
                        try (PointerScope gathered = new PointerScope()) {
                            var optState = opt.gatherState(); // under ZeRO a collective: the owners send rank 0 their parts
                            if (leader) ckpt.save(state, named, optState, opt.steps(), trainable::saveInto);
                        }
                    }
                    if (stopNow) {
                        log.printf("%nearly stopping at step %d: no validation improvement in %d evaluations%n", step, noImprovement);
                        stoppedEarly = true;
                        break;
                    }
                } finally {
                    ExitGate.leave();
                }
            }
        }
        trainable.train(false);
        return new Outcome(step, lastLoss, best, firstVal, stoppedEarly, lastMetrics, valSeconds, finalValSeconds);
    }

    private static String describe(Evaluation.Result v) {
        if (v.metrics().isEmpty()) return String.format(", perplexity %.2f", v.perplexity());
        Double acc = v.metrics().get("rewards/accuracies"), margin = v.metrics().get("rewards/margins");
        return acc == null ? "" : String.format(", reward accuracy %.3f, margin %.4f", acc, margin == null ? Double.NaN : margin);
    }
}
