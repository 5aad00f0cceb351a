package dev.tune4j.recipes;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.eval.*;
import dev.tune4j.hf.AtomicFiles;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.text.Tokenizer;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * What every run leaves for its report: summary, the adapter's spectrum (LoRA), the forgetting check (general-text
 * perplexity before training and after), sample answers (SFT); then report.html.
 */
final class RunReport {
    private RunReport() {}

    /** The general-text perplexity of the model as it starts (a LoRA adapter off), kept in the run folder for a resume. */
    static Double baseline(dev.tune4j.train.TrainConfig c, LlamaModel model, LoraAdapter lora, Tokenizer tok, long eos, PrintStream log) throws IOException {
        if (c.generalFile() == null) return null;
        Path file = c.out().resolve("forgetting_base.json");
        var json = new ObjectMapper();
        if (c.resume() != null && java.nio.file.Files.exists(file)) return json.readTree(file.toFile()).get("base_perplexity").asDouble();
        if (lora != null) lora.enable(false);
        double ppl = generalPerplexity(c, model, tok, eos);
        if (lora != null) lora.enable(true);
        save(file, json.writeValueAsBytes(java.util.Map.of("base_perplexity", ppl)));
        log.printf("forgetting check: general-text perplexity before training %.3f%n", ppl);
        return ppl;
    }

    static void write(dev.tune4j.train.TrainConfig c, LlamaModel model, Tokenizer tok, LoraAdapter lora, List<dev.tune4j.data.Example> sampleFrom, Run.Summary s,
                      long eos, Double basePerplexity, PrintStream log) throws IOException {
        var json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        Path out = c.out();
        var sum = new LinkedHashMap<String, Object>();
        sum.put("method", c.method());
        sum.put("stage", c.stage());
        sum.put("steps", s.steps());
        sum.put("last_train_loss", s.lastLoss());
        sum.put("first_val_loss", Double.isNaN(s.firstValLoss()) ? null : s.firstValLoss());
        sum.put("best_val_loss", Double.isNaN(s.bestValLoss()) ? null : s.bestValLoss());
        sum.put("seconds", s.seconds());
        sum.put("peak_rss_mib", s.peakRssBytes() / 1048576.0);
        sum.put("predicted_peak_mib", Math.round(s.predictedPeakBytes() / 1048576.0));
        sum.put("trainable_parameters", s.trainableParams());
        sum.put("stopped_early", s.stoppedEarly());
        sum.put(lora != null ? "adapter" : "model", s.output().toString());
        s.lastMetrics().forEach((k, v) -> { if (Double.isFinite(v)) sum.put(k, v); });
        save(out.resolve("summary.json"), json.writeValueAsBytes(sum));

        if (lora != null && !lora.config.useDora()) { // a DoRA update is full rank and depends on W: no r-dimensional spectrum to show
            var spectrum = Spectrum.of(lora);
            var rows = spectrum.stream().map(m -> {
                var r = new LinkedHashMap<String, Object>();
                r.put("name", m.name());
                r.put("r", m.r());
                r.put("sigma", m.sigma());
                r.put("effective_rank", m.effectiveRank());
                r.put("used_rank", m.usedRank());
                r.put("top1_energy", m.top1Energy());
                r.put("condition", Double.isFinite(m.condition()) ? m.condition() : null);
                r.put("warning", m.warning());
                return r;
            }).toList();
            save(out.resolve("spectrum.json"), json.writeValueAsBytes(rows));
            long warned = spectrum.stream().filter(m -> m.warning() != null).count();
            if (warned > 0) log.println("adapter spectrum: " + warned + " module(s) with warnings (see report.html)");
        }
        if (basePerplexity != null) {
            double tuned = generalPerplexity(c, model, tok, eos);
            var f = new Forgetting(basePerplexity, tuned, c.forgettingThreshold(), 0);
            var fj = new LinkedHashMap<String, Object>();
            fj.put("base_perplexity", f.basePerplexity());
            fj.put("tuned_perplexity", f.tunedPerplexity());
            fj.put("relative_increase", f.relativeIncrease());
            fj.put("threshold", f.threshold());
            fj.put("flagged", f.flagged());
            fj.put("summary", f.summary());
            save(out.resolve("forgetting.json"), json.writeValueAsBytes(fj));
            log.println(f.summary());
        }
        if (tok != null && !sampleFrom.isEmpty()) {
            var samples = Scoring.samples(model, tok, sampleFrom, 3, 48, List.of((int) eos));
            save(out.resolve("samples.json"), json.writeValueAsBytes(samples));
        }
        log.println("report: " + Report.write(out));
    }

    private static double generalPerplexity(dev.tune4j.train.TrainConfig c, LlamaModel model, Tokenizer tok, long eos) {
        return Perplexity.of(model, tok, c.generalFile(), dev.tune4j.data.Format.TEXT, dev.tune4j.data.Encoder.PromptStyle.ALPACA, c.maxSeqLen(), 4, eos).perplexity();
    }

    private static void save(Path p, byte[] b) throws IOException {
        AtomicFiles.write(p, o -> o.write(b));
    }
}
