package dev.tune4j.recipes;

import dev.tune4j.data.Dataset;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.quant.FourBit;
import dev.tune4j.quant.Quantizer;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.text.Tokenizer;
import dev.tune4j.train.*;
import me.tongfei.progressbar.ProgressBar;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

/**
 * LoRA supervised fine-tuning: a frozen base model, LoRA on the target projections, loss on completion tokens, AdamW on
 * the adapter only, and a PEFT adapter as the result. setup → loop → save, written out.
 */
public final class LoraSft {
    private LoraSft() {}

    /** @param output the PEFT adapter folder (LoRA/QLoRA) or the model folder (full fine-tuning) */
    public record Summary(long steps, double lastLoss, double bestValLoss, double firstValLoss, double seconds, long peakRssBytes,
                          Path output, boolean stoppedEarly, long trainableParams, long predictedPeakBytes) {}

    /** Thrown when the loss stops being a number; the last checkpoint written stays untouched. */
    public static final class Diverged extends RuntimeException {
        Diverged(String message) {
            super(message);
        }
    }

    public static Summary run(TrainConfig c, PrintStream log) throws IOException {
        long t0 = System.nanoTime();
        // ---- setup ----
        RunSetup.writeResolvedConfig(c, log);
        Compute compute = c.computeDtype() == null ? Compute.auto() : new Compute(Compute.auto().cuda(), c.computeDtype().equals("bfloat16"));
        try (ModelFolder folder = ModelFolder.open(c.model());
             LlamaModel model = folder.bitsandbytes4bit() ? FourBit.load(folder, compute) : LlamaModel.load(folder, compute);
             Tokenizer tok = Tokenizer.load(c.model())) {
            long eos = RunSetup.eosId(tok, model.config), pad = RunSetup.padId(tok, model.config, eos);
            if (folder.bitsandbytes4bit() && !c.method().equals("qlora"))
                throw new IllegalArgumentException(c.model() + " is a 4-bit checkpoint: train it with --method qlora");
            if (folder.bitsandbytes4bit()) log.println("qlora: loaded the 4-bit checkpoint as stored (no re-quantization)");
            else if (c.method().equals("qlora")) {
                Quantizer.checkBlocksize(c.blocksize());
                var sizes = FourBit.quantize(model, c.quant(), c.blocksize(), c.doubleQuant());
                log.printf("qlora: %d projections in %s%s (block %d): %.1f MiB → %.1f MiB (%.3f of fp32)%n", sizes.tensors(), c.quant(),
                        c.doubleQuant() ? " + double quantization" : "", c.blocksize(), sizes.denseBytes() / 1048576.0, sizes.quantizedBytes() / 1048576.0, sizes.ratio());
            }
            Dataset ds = RunSetup.dataset(c, tok, eos, log);
            var loraCfg = new LoraConfig(c.r(), c.loraAlpha(), c.loraDropout(), c.targetModules(), c.useRslora());
            try (LoraAdapter lora = LoraAdapter.create(model, loraCfg, c.seed(), c.model().toAbsolutePath().toString())) {
                var params = lora.namedParameters();
                log.printf("model: %s, %,d parameters (frozen); LoRA r=%d alpha=%s on %d modules: %,d trainable (%.3f%%)%n",
                        model.config.arch().className, model.parameterCount(), c.r(), c.loraAlpha(), lora.modules().size(),
                        lora.trainableParameterCount(), 100.0 * lora.trainableParameterCount() / model.parameterCount());
                long predicted = RunSetup.predictPeak(c, model.config, ds, c.method(), !model.compute.cuda(), log);
                var train = new Batches(ds.train, c.batchSize(), c.maxSeqLen(), c.packing(), pad, c.seed());
                var val = new Batches(ds.val, c.batchSize(), c.maxSeqLen(), false, pad, c.seed());
                long totalSteps = c.maxSteps() > 0 ? c.maxSteps() : (long) Math.ceil((double) c.epochs() * train.perEpoch() / c.gradAccum());
                int warmup = c.warmupSteps() > 0 ? c.warmupSteps() : LrSchedule.warmupFromRatio(c.warmupRatio(), (int) totalSteps);
                var schedule = LrSchedule.of(c.scheduler(), c.lr(), warmup, (int) totalSteps);
                var ckpt = new Checkpoints(c.out(), c.keepBest(), c.keepLast());
                var groups = params.values().stream().map(p -> new AdamW.Param(p, c.weightDecay())).toList();
                try (Optimizer opt = c.optim().equals("adamw8bit") ? new AdamW8bit(groups, 0.9, 0.999, 1e-8) : new AdamW(groups, 0.9, 0.999, 1e-8, c.optimOffload())) {
                    long step = 0, micro = 0;
                    double best = Double.NaN, firstVal = Double.NaN, lastLoss = Double.NaN;
                    int noImprovement = 0;
                    Path resumeFrom = RunSetup.resolveResume(c, ckpt);
                    if (resumeFrom != null) {
                        var st = Checkpoints.load(resumeFrom, params, opt);
                        step = st.step();
                        micro = st.microBatches();
                        best = st.bestValLoss();
                        noImprovement = st.evalsWithoutImprovement();
                        log.printf("resumed from %s at step %d%n", resumeFrom, step);
                    }
                    if (!ds.val.isEmpty() && step == 0) {
                        firstVal = Evaluation.run(model, val).loss();
                        log.printf("validation before training: loss %.4f, perplexity %.2f%n", firstVal, Math.exp(firstVal));
                    }
                    boolean stoppedEarly = false;
                    lora.train(true);
                    // ---- loop ----
                    try (Metrics metrics = new Metrics(c.out().resolve("metrics.jsonl"), resumeFrom != null);
                         TensorBoard tb = new TensorBoard(c.out().resolve("tensorboard"));
                         ProgressBar bar = StepProgress.create("lora", totalSteps)) {
                        bar.stepTo(step);
                        while (step < totalSteps) {
                            step++;
                            torch.manual_seed(c.seed() * 1_000_003L + step); // dropout masks depend on the step only: exact resume
                            long stepStart = System.nanoTime();
                            var acc = Accumulation.run(model, train, micro, c.gradAccum(), c.gradientCheckpointing(), c.lossChunk());
                            micro = acc.nextMicro();
                            long tokens = acc.tokens();
                            double loss = acc.loss();
                            if (!Double.isFinite(loss)) {
                                Path last = ckpt.latest();
                                throw new Diverged("loss became " + loss + " at step " + step + "; stopped without updating the weights. "
                                        + (last == null ? "No checkpoint was written yet." : "Last good checkpoint: " + last) + " (try a lower --lr)");
                            }
                            double gradNorm = GradClip.clip(lora.parameters(), c.maxGradNorm());
                            double lr = schedule.lr((int) step - 1);
                            opt.step(lr);
                            opt.zeroGrad();
                            lastLoss = loss;
                            double secs = (System.nanoTime() - stepStart) / 1e9;
                            var rec = Metrics.step(step, (double) micro / train.perEpoch(), loss, lr, gradNorm, tokens / secs);
                            bar.step();
                            bar.setExtraMessage(String.format(" loss %.4f lr %.2e %.0f tok/s", loss, lr, tokens / secs));

                            boolean epochEnd = micro % train.perEpoch() < c.gradAccum();
                            boolean evalNow = !ds.val.isEmpty() && (step == totalSteps || (c.evalSteps() > 0 ? step % c.evalSteps() == 0 : epochEnd));
                            double valLoss = Double.NaN;
                            if (evalNow) {
                                lora.train(false);
                                valLoss = Evaluation.run(model, val).loss();
                                lora.train(true);
                                rec.put("val_loss", Metrics.round(valLoss, 6));
                                rec.put("val_perplexity", Metrics.round(Math.exp(valLoss), 4));
                                if (Double.isNaN(best) || valLoss < best) {
                                    best = valLoss;
                                    noImprovement = 0;
                                } else noImprovement++;
                                log.printf("%nstep %d: val loss %.4f (best %.4f)%n", step, valLoss, best);
                            }
                            if (step % c.loggingSteps() == 0 || evalNow) metrics.log(rec, tb);
                            boolean stopNow = c.earlyStoppingPatience() > 0 && noImprovement >= c.earlyStoppingPatience();
                            if ((c.saveSteps() > 0 && step % c.saveSteps() == 0) || step == totalSteps || stopNow) {
                                var state = new Checkpoints.State(step, micro, (double) micro / train.perEpoch(), valLoss, best, noImprovement);
                                ckpt.save(state, params, opt, dir -> lora.save(dir.resolve("adapter")));
                            }
                            if (stopNow) {
                                log.printf("%nearly stopping at step %d: no validation improvement in %d evaluations%n", step, noImprovement);
                                stoppedEarly = true;
                                break;
                            }
                        }
                    }
                    // ---- save ----
                    lora.train(false);
                    Path adapterDir = c.out().resolve("adapter");
                    lora.save(adapterDir);
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    var summary = new Summary(step, lastLoss, best, firstVal, seconds, Memory.peakResidentBytes(), adapterDir, stoppedEarly, lora.trainableParameterCount(), predicted);
                    RunReport.write(c, model, tok, lora, ds, summary, eos, log);
                    RunSetup.reportPeak(predicted, summary.peakRssBytes(), log);
                    log.printf("done: %d steps in %.1f s; last train loss %.4f; best val loss %s; peak memory %.0f MiB; adapter in %s%n",
                            step, seconds, lastLoss, Double.isNaN(best) ? "-" : String.format("%.4f", best), Memory.mib(summary.peakRssBytes()), adapterDir);
                    return summary;
                }
            }
        }
    }

}
