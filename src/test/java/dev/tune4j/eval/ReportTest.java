package dev.tune4j.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * report.html from a hand-written run folder of the capstone's shape (24 layers × 7 modules, a 151,936-token vocabulary's
 * loss of 11.949314283288043): rounded numbers with units, curves, the heat map with warnings, phases and memory by part.
 */
class ReportTest {
    @TempDir
    Path run;

    static final ObjectMapper JSON = new ObjectMapper();

    /** A run folder as Run leaves it, without a model: what the report reads. */
    static Path fixture(Path run) throws Exception {
        return fixture(run, false);
    }

    /** @param preference with TRL's reward metrics, as a DPO stage logs them */
    static Path fixture(Path run, boolean preference) throws Exception {
        var metrics = new StringBuilder();
        for (int step = 1; step <= 40; step++) {
            var r = new LinkedHashMap<String, Object>();
            r.put("step", step);
            r.put("loss", step == 1 ? 11.949314283288043 : 2 + 10.0 / step);
            r.put("lr", 2e-4 * (1 - step / 41.0));
            r.put("grad_norm", 3.0 / Math.sqrt(step));
            r.put("tokens_per_s", 372.26 + step);
            r.put("rss_mib", 8000 + 20 * step);
            if (preference) {
                r.put("rewards/margins", 0.05 * step);
                r.put("rewards/accuracies", Math.min(1, 0.5 + step / 60.0));
            }
            if (step % 10 == 0) r.put("val_loss", 2.5 + 5.0 / step);
            if (step % 10 == 0 && preference) {
                r.put("eval_rewards/margins", 0.04 * step);
                r.put("eval_rewards/accuracies", 0.5 + step / 100.0);
            }
            metrics.append(JSON.writeValueAsString(r)).append('\n');
        }
        Files.writeString(run.resolve("metrics.jsonl"), metrics);
        var sum = new LinkedHashMap<String, Object>();
        sum.put("method", "lora");
        sum.put("stage", "sft");
        sum.put("steps", 40);
        sum.put("last_train_loss", 2.2500000000000004);
        sum.put("first_val_loss", 11.949314283288043);
        sum.put("best_val_loss", 3.0000001);
        sum.put("seconds", 192.4);
        sum.put("peak_rss_mib", 10854.3);
        sum.put("predicted_peak_mib", 9011);
        sum.put("predicted_parts_mib", Map.of("weights (frozen)", 1884, "activations", 5120, "runtime (JVM + libtorch)", 2007));
        var phases = new LinkedHashMap<String, Double>();
        phases.put("load", 3.2);
        phases.put("training", 150.0);
        phases.put("final validation", 12.5);
        phases.put("save", 0.4);
        phases.put("samples", 25.9);
        phases.put("report", 0.3);
        sum.put("phase_seconds", phases);
        sum.put("trainable_parameters", 8_798_208);
        Files.writeString(run.resolve("summary.json"), JSON.writeValueAsString(sum));
        var spectrum = new ArrayList<Map<String, Object>>();
        String[] mods = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        for (int l = 0; l < 24; l++)
            for (String m : mods) {
                var e = new LinkedHashMap<String, Object>();
                e.put("name", "model.layers." + l + "." + m);
                e.put("r", 16);
                e.put("sigma", new double[]{0.01 * (l + 1), 0.001});
                e.put("effective_rank", 7.123456);
                e.put("used_rank", 12);
                e.put("top1_energy", 0.2);
                e.put("condition", 3.3);
                e.put("warning", l == 3 && m.endsWith("v_proj") ? "rank collapse: 95% of the update in one direction" : null);
                spectrum.add(e);
            }
        Files.writeString(run.resolve("spectrum.json"), JSON.writeValueAsString(spectrum));
        Files.writeString(run.resolve("forgetting.json"), JSON.writeValueAsString(Map.of("base_perplexity", 6.757123, "tuned_perplexity", 8.836456,
                "relative_increase", 0.3077, "threshold", 0.1, "flagged", true, "summary", "…")));
        Files.writeString(run.resolve("samples.json"), JSON.writeValueAsString(List.of(Map.of("prompt", "What colour does <Tom> like?", "expected", "red", "answer", "Tom likes red."))));
        Files.writeString(run.resolve("run_config.json"), JSON.writeValueAsString(Map.of("method", "lora", "stage", "sft", "model", "/models/qwen", "lr", 2e-4)));
        return run;
    }

    /**
     * The planner predicts the training loop, so the report holds it against the loop's own peak (summary
     * training_peak_rss_mib) and shows the whole run's beside it when loading or the end went higher.
     */
    @Test
    void thePlannerIsHeldAgainstTheTrainingPeak() throws Exception {
        Path dir = fixture(run);
        var sum = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(dir.resolve("summary.json").toFile());
        sum.put("training_peak_rss_mib", 9216.0);
        Files.writeString(dir.resolve("summary.json"), JSON.writeValueAsString(sum));
        String html = Files.readString(Report.write(dir));
        assertThat(html).contains("peak memory in training", "9 GiB", "planner 8.8 GiB (−2.22 %)", "whole run's peak (RSS)", "10.6 GiB");
    }

    @Test
    void roundedNumbersWithUnitsCurvesHeatMapPhasesAndMemory() throws Exception {
        String html = Files.readString(Report.write(fixture(run)));
        assertThat(html).doesNotContain("11.949314283288043", "2.2500000000000004", "10854.3")
                .contains("11.95", "2.25", "10.6 GiB", "8.8 GiB", "3 min 12 s", "tok/s", "8.8 M");
        for (String chart : List.of("training loss and validation loss", "learning rate", "gradient norm", "throughput (tokens/s)", "resident memory (RSS, GiB)"))
            assertThat(html).contains("aria-label=\"" + chart);
        assertThat(html).contains("Time per phase", "final validation", "samples", "2 min 30 s")   // the phases with their times
                .contains("activations", "5 GiB", "measured peak")                                // predicted parts next to the peak
                .contains("layer 23", "q_proj", "down_proj", "class=\"w\"", "rank collapse</span> in 1 module: layer 3 v_proj (95% of the update in one direction)")  // 24 × 7 heat map, one warning
                .contains("What colour does &lt;Tom&gt; like?")                                     // escaped
                .contains("6.757", "8.836", "+30.8 %");
        assertThat(html.split("<tr>", -1)).as("one row per layer, not one per module").hasSizeLessThan(40);
        assertThat(html).as("a summary without the training loop's own peak: the whole run's is compared").doesNotContain("whole run's peak");
        assertThat(html).doesNotContain("<script", "<link", "http://", "https://", "<img");  // self-contained: works offline
    }

    @Test
    void preferenceRunsKeepTheirRewardCurves() throws Exception {
        String html = Files.readString(Report.write(fixture(run, true)));
        assertThat(html).contains("aria-label=\"reward margin (rewards/margins)", "aria-label=\"reward accuracy (rewards/accuracies, %)");
    }

    @Test
    void aRunWithoutItsEndOfRunFilesSaysWhatIsMissing() throws Exception {
        Files.writeString(run.resolve("metrics.jsonl"), "{\"step\":1,\"loss\":2.5,\"lr\":0.001}\n");
        String html = Files.readString(Report.write(run));
        assertThat(html).contains("no summary.json", "no spectrum.json", "not run", "none", "no run_config.json");
    }

    @Test
    void ticksAreRoundNumbers() {
        assertThat(Charts.ticks(0.0013, 3.748)).containsExactly(0, 1, 2, 3, 4);
        assertThat(Charts.ticks(305, 320)).containsExactly(305, 310, 315, 320);
        assertThat(Charts.ticks(5, 5)).hasSizeGreaterThan(1);
        assertThat(Charts.tick(1.272, 0.002)).isEqualTo("1.272");
        assertThat(Charts.tick(1.274, 0.002)).isEqualTo("1.274");
        assertThat(Charts.tick(10000, 2000)).isEqualTo("10 k");
        assertThat(Charts.tick(1.5e-4, 5e-5)).isEqualTo("1.5e-4");
        assertThat(Charts.tick(300, 100)).isEqualTo("300");
        // a flat RSS curve (8,903 → 8,907 MiB in GiB): a step just under 1e-3 must not round every tick to "8.7"
        assertThat(Charts.tick(8.694, 0.0009999999)).isEqualTo("8.694");
        assertThat(Charts.tick(8.6945, 5e-4)).isEqualTo("8.6945");
    }
}
