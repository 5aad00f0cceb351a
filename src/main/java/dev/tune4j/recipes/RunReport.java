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
import java.util.Map;

/**
 * What every run leaves for its report: the adapter's spectrum (LoRA), the forgetting check (general-text perplexity
 * before training and after), sample answers (SFT and preference prompts; {@code --samples 0} skips them), the summary
 * with the planner's prediction by component and the time of each phase; then report.html.
 */
final class RunReport {
    private RunReport() {}

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** The general-text perplexity of the model as it starts (a LoRA adapter off), kept in the run folder for a resume. */
    static Double baseline(dev.tune4j.train.TrainConfig c, LlamaModel model, LoraAdapter lora, Tokenizer tok, long eos, PrintStream log) throws IOException {
        if (c.generalFile() == null) return null;
        Path file = c.out().resolve("forgetting_base.json");
        if (c.resume() != null && java.nio.file.Files.exists(file)) return JSON.readTree(file.toFile()).get("base_perplexity").asDouble();
        if (lora != null) lora.enable(false);
        double ppl = generalPerplexity(c, model, tok, eos);
        if (lora != null) lora.enable(true);
        save(file, JSON.writeValueAsBytes(Map.of("base_perplexity", ppl)));
        log.printf("forgetting check: general-text perplexity before training %s%n", Units.number(ppl));
        return ppl;
    }

    /** New tokens per sample answer: a glimpse of the tuned model, bounded (decoding is bandwidth-bound: ~0.1 s a token at 0.5 B). */
    static final int SAMPLE_TOKENS = 32;

    /** The end-of-run measurements, each its own phase: spectrum.json, forgetting.json, samples.json. */
    static void evaluate(dev.tune4j.train.TrainConfig c, LlamaModel model, Tokenizer tok, LoraAdapter lora, List<dev.tune4j.data.Example> sampleFrom,
                         long eos, Double basePerplexity, Phases phases, PrintStream log) throws IOException {
        Path out = c.out();
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
            save(out.resolve("spectrum.json"), JSON.writeValueAsBytes(rows));
            long warned = spectrum.stream().filter(m -> m.warning() != null).count();
            if (warned > 0) log.println("adapter spectrum: " + warned + " module(s) with warnings (see report.html)");
            phases.mark("adapter spectrum");
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
            save(out.resolve("forgetting.json"), JSON.writeValueAsBytes(fj));
            log.println(f.summary());
            phases.mark("forgetting check");
        }
        int n = c.applies("samples") ? Math.min(c.samples(), sampleFrom.size()) : 0;
        if (tok != null && n > 0) {
            log.printf("samples: answering %d validation prompt(s), up to %d new tokens each (--samples 0 skips this)%n", n, SAMPLE_TOKENS);
            var samples = Scoring.samples(model, tok, sampleFrom, n, SAMPLE_TOKENS, List.of((int) eos));
            save(out.resolve("samples.json"), JSON.writeValueAsBytes(samples));
            log.printf("samples: %d in %s%n", samples.size(), Units.duration(phases.mark("samples")));
        }
    }

    /**
     * summary.json and report.html. summary.json is written again after the report, so that it holds the report's own
     * time too (a later {@code tune4j report} shows it).
     */
    static void write(dev.tune4j.train.TrainConfig c, LoraAdapter lora, Run.Summary s, Map<String, Long> predictedParts, Phases phases, PrintStream log) throws IOException {
        Path out = c.out();
        save(out.resolve("summary.json"), JSON.writeValueAsBytes(summary(c, lora, s, predictedParts, phases)));
        Path report = Report.write(out);
        phases.mark("report");
        save(out.resolve("summary.json"), JSON.writeValueAsBytes(summary(c, lora, s, predictedParts, phases)));
        log.println("report: " + report);
    }

    private static Map<String, Object> summary(dev.tune4j.train.TrainConfig c, LoraAdapter lora, Run.Summary s, Map<String, Long> predictedParts, Phases phases) {
        var sum = new LinkedHashMap<String, Object>();
        sum.put("method", c.method());
        sum.put("stage", c.stage());
        sum.put("steps", s.steps());
        sum.put("last_train_loss", s.lastLoss());
        sum.put("first_val_loss", Double.isNaN(s.firstValLoss()) ? null : s.firstValLoss());
        sum.put("best_val_loss", Double.isNaN(s.bestValLoss()) ? null : s.bestValLoss());
        sum.put("seconds", dev.tune4j.train.Metrics.round(phases.total(), 3));
        sum.put("peak_rss_mib", s.peakRssBytes() / 1048576.0);
        sum.put("training_peak_rss_mib", s.trainingPeakBytes() / 1048576.0);
        sum.put("predicted_peak_mib", Math.round(s.predictedPeakBytes() / 1048576.0));
        var parts = new LinkedHashMap<String, Long>();
        predictedParts.forEach((k, v) -> parts.put(k, Math.round(v / 1048576.0)));
        sum.put("predicted_parts_mib", parts);
        var times = new LinkedHashMap<String, Double>();
        phases.seconds().forEach((k, v) -> times.put(k, dev.tune4j.train.Metrics.round(v, 3)));
        sum.put("phase_seconds", times);
        sum.put("trainable_parameters", s.trainableParams());
        sum.put("stopped_early", s.stoppedEarly());
        sum.put(lora != null ? "adapter" : "model", s.output().toString());
        s.lastMetrics().forEach((k, v) -> { if (Double.isFinite(v)) sum.put(k, v); });
        return sum;
    }

    private static double generalPerplexity(dev.tune4j.train.TrainConfig c, LlamaModel model, Tokenizer tok, long eos) {
        return Perplexity.of(model, tok, c.generalFile(), dev.tune4j.data.Format.TEXT, dev.tune4j.data.Encoder.PromptStyle.ALPACA, c.maxSeqLen(), 4, eos).perplexity();
    }

    private static void save(Path p, byte[] b) throws IOException {
        AtomicFiles.write(p, o -> o.write(b));
    }
}
