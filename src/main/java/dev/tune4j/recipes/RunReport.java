package dev.tune4j.recipes;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.data.Dataset;
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

/** What a LoRA run leaves for its report: summary, spectrum, forgetting check, sample answers; then report.html. */
final class RunReport {
    private RunReport() {}

    static void write(dev.tune4j.train.TrainConfig c, LlamaModel model, Tokenizer tok, LoraAdapter lora, Dataset ds, LoraSft.Summary s,
                      long eos, PrintStream log) throws IOException {
        var json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        Path out = c.out();
        var sum = new LinkedHashMap<String, Object>();
        sum.put("steps", s.steps());
        sum.put("last_train_loss", s.lastLoss());
        sum.put("first_val_loss", Double.isNaN(s.firstValLoss()) ? null : s.firstValLoss());
        sum.put("best_val_loss", Double.isNaN(s.bestValLoss()) ? null : s.bestValLoss());
        sum.put("seconds", s.seconds());
        sum.put("peak_rss_mib", s.peakRssBytes() / 1048576.0);
        sum.put("predicted_peak_mib", Math.round(s.predictedPeakBytes() / 1048576.0));
        sum.put("trainable_parameters", s.trainableParams());
        sum.put("stopped_early", s.stoppedEarly());
        sum.put("adapter", s.output().toString());
        save(out.resolve("summary.json"), json.writeValueAsBytes(sum));

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

        if (c.generalFile() != null) {
            lora.setWeight(0); // the base model first, then with the adapter back on
            var f = Perplexity.forgetting(model, tok, c.generalFile(), c.maxSeqLen(), eos, c.forgettingThreshold(), () -> lora.setWeight(1));
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
        var samples = Scoring.samples(model, tok, ds.val.isEmpty() ? ds.train : ds.val, 3, 48, List.of((int) eos));
        save(out.resolve("samples.json"), json.writeValueAsBytes(samples));
        log.println("report: " + Report.write(out));
    }

    private static void save(Path p, byte[] b) throws IOException {
        AtomicFiles.write(p, o -> o.write(b));
    }
}
