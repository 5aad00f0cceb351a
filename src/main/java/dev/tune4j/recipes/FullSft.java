package dev.tune4j.recipes;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.data.Dataset;
import dev.tune4j.eval.Report;
import dev.tune4j.hf.AtomicFiles;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.text.Tokenizer;
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
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Full supervised fine-tuning: every weight trained (AdamW, weight decay on matrices only, fp32 state), loss on completion
 * tokens, the result a Hugging Face model folder. setup → loop → save, over the same components as LoRA SFT.
 */
public final class FullSft {
    private FullSft() {}

    public static LoraSft.Summary run(TrainConfig c, PrintStream log) throws IOException {
        long t0 = System.nanoTime();
        // ---- setup ----
        RunSetup.writeResolvedConfig(c, log);
        try (ModelFolder folder = ModelFolder.open(c.model())) {
            if (folder.bitsandbytes4bit()) throw new IllegalArgumentException(c.model() + " is a 4-bit checkpoint: full fine-tuning needs the unquantized weights");
            try (LlamaModel model = LlamaModel.load(folder, Compute.auto()); Tokenizer tok = Tokenizer.load(c.model())) {
                long eos = RunSetup.eosId(tok, model.config), pad = RunSetup.padId(tok, model.config, eos);
                Dataset ds = RunSetup.dataset(c, tok, eos, log);
                model.trainAll();
                var params = model.namedTensors();
                log.printf("model: %s, %,d parameters, all trainable%n", model.config.arch().className, model.parameterCount());
                long predicted = RunSetup.predictPeak(c, model.config, ds, "full", !model.compute.cuda(), log);
                var train = new Batches(ds.train, c.batchSize(), c.maxSeqLen(), c.packing(), pad, c.seed());
                var val = new Batches(ds.val, c.batchSize(), c.maxSeqLen(), false, pad, c.seed());
                long totalSteps = c.maxSteps() > 0 ? c.maxSteps() : (long) Math.ceil((double) c.epochs() * train.perEpoch() / c.gradAccum());
                int warmup = c.warmupSteps() > 0 ? c.warmupSteps() : LrSchedule.warmupFromRatio(c.warmupRatio(), (int) totalSteps);
                var schedule = LrSchedule.of(c.scheduler(), c.lr(), warmup, (int) totalSteps);
                var ckpt = new Checkpoints(c.out(), c.keepBest(), c.keepLast());
                var groups = params.values().stream().map(p -> new AdamW.Param(p, p.dim() >= 2 ? c.weightDecay() : 0.0)).toList();
                List<Tensor> all = List.copyOf(params.values());
                try (Optimizer opt = c.optim().equals("adamw8bit") ? new AdamW8bit(groups, 0.9, 0.999, 1e-8) : new AdamW(groups, 0.9, 0.999, 1e-8, c.optimOffload())) {
                    long step = 0, micro = 0;
                    double best = Double.NaN, firstVal = Double.NaN, lastLoss = Double.NaN;
                    Path resumeFrom = RunSetup.resolveResume(c, ckpt);
                    if (resumeFrom != null) {
                        var st = Checkpoints.load(resumeFrom, params, opt);
                        step = st.step();
                        micro = st.microBatches();
                        best = st.bestValLoss();
                        log.printf("resumed from %s at step %d%n", resumeFrom, step);
                    }
                    if (!ds.val.isEmpty() && step == 0) {
                        firstVal = Evaluation.run(model, val).loss();
                        log.printf("validation before training: loss %.4f, perplexity %.2f%n", firstVal, Math.exp(firstVal));
                    }
                    // ---- loop ----
                    try (Metrics metrics = new Metrics(c.out().resolve("metrics.jsonl"), resumeFrom != null);
                         TensorBoard tb = new TensorBoard(c.out().resolve("tensorboard"));
                         ProgressBar bar = StepProgress.create("full", totalSteps)) {
                        bar.stepTo(step);
                        while (step < totalSteps) {
                            step++;
                            torch.manual_seed(c.seed() * 1_000_003L + step);
                            long stepStart = System.nanoTime();
                            var acc = Accumulation.run(model, train, micro, c.gradAccum(), c.gradientCheckpointing(), c.lossChunk());
                            micro = acc.nextMicro();
                            long tokens = acc.tokens();
                            double loss = acc.loss();
                            if (!Double.isFinite(loss)) {
                                Path last = ckpt.latest();
                                throw new LoraSft.Diverged("loss became " + loss + " at step " + step + "; stopped without updating the weights. "
                                        + (last == null ? "No checkpoint was written yet." : "Last good checkpoint: " + last) + " (try a lower --lr)");
                            }
                            double gradNorm = GradClip.clip(all, c.maxGradNorm());
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
                                valLoss = Evaluation.run(model, val).loss();
                                rec.put("val_loss", Metrics.round(valLoss, 6));
                                rec.put("val_perplexity", Metrics.round(Math.exp(valLoss), 4));
                                if (Double.isNaN(best) || valLoss < best) best = valLoss;
                                log.printf("%nstep %d: val loss %.4f (best %.4f)%n", step, valLoss, best);
                            }
                            if (step % c.loggingSteps() == 0 || evalNow) metrics.log(rec, tb);
                            if ((c.saveSteps() > 0 && step % c.saveSteps() == 0) || step == totalSteps)
                                ckpt.save(new Checkpoints.State(step, micro, (double) micro / train.perEpoch(), valLoss, best, 0), params, opt, dir -> {});
                        }
                    }
                    // ---- save ----
                    model.requireGrad(false);
                    Path modelDir = c.out().resolve("model");
                    model.save(modelDir, DType.F32, 5_000_000_000L);
                    for (String f : List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"))
                        if (Files.exists(c.model().resolve(f))) Files.copy(c.model().resolve(f), modelDir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    var summary = new LoraSft.Summary(step, lastLoss, best, firstVal, seconds, Memory.peakResidentBytes(), modelDir, false, model.parameterCount(), predicted);
                    var sum = new LinkedHashMap<String, Object>();
                    sum.put("method", "full");
                    sum.put("steps", step);
                    sum.put("last_train_loss", lastLoss);
                    sum.put("first_val_loss", Double.isNaN(firstVal) ? null : firstVal);
                    sum.put("best_val_loss", Double.isNaN(best) ? null : best);
                    sum.put("seconds", seconds);
                    sum.put("peak_rss_mib", summary.peakRssBytes() / 1048576.0);
                    sum.put("predicted_peak_mib", Math.round(predicted / 1048576.0));
                    sum.put("model", modelDir.toString());
                    byte[] json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(sum);
                    AtomicFiles.write(c.out().resolve("summary.json"), o -> o.write(json));
                    log.println("report: " + Report.write(c.out()));
                    RunSetup.reportPeak(predicted, summary.peakRssBytes(), log);
                    log.printf("done: %d steps in %.1f s; last train loss %.4f; best val loss %s; peak memory %.0f MiB; model in %s%n",
                            step, seconds, lastLoss, Double.isNaN(best) ? "-" : String.format("%.4f", best), Memory.mib(summary.peakRssBytes()), modelDir);
                    return summary;
                }
            }
        }
    }
}
