package dev.tune4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.hf.TensorInfo;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/** Preference training end to end on the embedded stories260K through the CLI: DPO, its resume, ORPO, SimPO, KTO, stages. */
class PreferenceTrainingTest {
    @TempDir
    Path tmp;

    static Path model;
    static final ObjectMapper JSON = new ObjectMapper();
    static final String[] NAMES = {"Lily", "Tom", "Ben", "Sue", "Max", "Amy"}, COLOURS = {"red", "blue", "green", "pink", "brown", "gold"};

    @BeforeAll
    static void setup() throws Exception {
        model = EmbeddedModel.stories260k();
    }

    /** Pairs that prefer each name's own colour over another one. */
    Path pairs(int n) throws Exception {
        var rnd = new Random(3);
        var sb = new StringBuilder("[");
        for (int i = 0; i < n; i++) {
            int k = rnd.nextInt(NAMES.length), wrong = (k + 1 + rnd.nextInt(NAMES.length - 1)) % NAMES.length;
            sb.append(i == 0 ? "" : ",").append(String.format("{\"prompt\": \"What colour does %s like?\", \"chosen\": \"%s likes %s.\", \"rejected\": \"%s likes %s.\"}",
                    NAMES[k], NAMES[k], COLOURS[k], NAMES[k], COLOURS[wrong]));
        }
        Path f = tmp.resolve("pairs.json");
        Files.writeString(f, sb.append("]").toString());
        return f;
    }

    List<String> base(String stage, Path data, Path out) {
        return new ArrayList<>(List.of("train", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(), "--stage", stage,
                "--prompt-style", "alpaca", "--batch-size", "4", "--max-seq-len", "128", "--seed", "7", "--lr", "2e-3"));
    }

    static List<JsonNode> metrics(Path out) throws Exception {
        var lines = new ArrayList<JsonNode>();
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) lines.add(JSON.readTree(l));
        return lines;
    }

    @Test
    void dpoLearnsThePreferenceAndLogsTrlsMetrics() throws Exception {
        Path out = tmp.resolve("dpo");
        var args = base("dpo", pairs(120), out);
        args.addAll(List.of("--r", "8", "--lora-alpha", "16", "--max-steps", "60", "--eval-steps", "30", "--beta", "0.1"));
        CliRun r = CliRun.of(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("reference = the base with the adapter off").contains("validation before training").contains("reward accuracy");
        var lines = metrics(out);
        assertThat(lines.getFirst().fieldNames()).toIterable().contains("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                "rewards/margins", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected");
        JsonNode lastEval = lines.stream().filter(l -> l.has("eval_rewards/accuracies")).reduce((a, b) -> b).orElseThrow();
        assertThat(lastEval.get("eval_rewards/accuracies").asDouble()).as("held-out pairs prefer the chosen answer").isGreaterThanOrEqualTo(0.75);
        assertThat(lastEval.get("eval_rewards/margins").asDouble()).isPositive();
        assertThat(lines.getFirst().get("loss").asDouble()).as("DPO starts at log 2 (policy = reference)").isCloseTo(Math.log(2), org.assertj.core.data.Offset.offset(1e-3));
        assertThat(lines.getLast().get("loss").asDouble()).isLessThan(0.5);
        JsonNode summary = JSON.readTree(out.resolve("summary.json").toFile());
        assertThat(summary.get("stage").asText()).isEqualTo("dpo");
        assertThat(summary.has("rewards/accuracies")).isTrue();
        assertThat(out.resolve("adapter/adapter_config.json")).exists();
        assertThat(Files.readString(out.resolve("report.html"))).contains("reward margin").contains("reward accuracy");
        JsonNode samples = JSON.readTree(out.resolve("samples.json").toFile());
        assertThat(samples.size()).as("the report answers held-out prompts, the chosen answer as expected").isEqualTo(3);
        assertThat(samples.get(0).get("expected").asText()).contains("likes");
    }

    @Test
    void dpoResumeAfterAKillIsBitIdentical() throws Exception {
        Path data = pairs(48), full = tmp.resolve("full"), killed = tmp.resolve("killed");
        List<String> common = List.of("--r", "4", "--lora-alpha", "8", "--max-steps", "24", "--save-steps", "3", "--keep-last", "2", "--lora-dropout", "0.1", "--grad-accum", "2");
        var a = base("dpo", data, full);
        a.addAll(common);
        assertThat(CliRun.of(a.toArray(String[]::new)).code()).isZero();
        var b = base("dpo", data, killed);
        b.addAll(common);
        TrainingTest.killAfterFirstCheckpoint(b, killed, tmp.resolve("killed.log"));
        assertThat(killed.resolve("adapter")).as("killed before the end").doesNotExist();
        var resumed = base("dpo", data, killed);
        resumed.addAll(common);
        resumed.addAll(List.of("--resume", "latest"));
        CliRun r = CliRun.of(resumed.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("resumed from");
        TrainingTest.assertSameAdapter(full, killed);
    }

    @Test
    void fullDpoPrecomputesTheReferenceOnceAndReusesItOnResume() throws Exception {
        Path data = pairs(24), out = tmp.resolve("full-dpo");
        var args = base("dpo", data, out);
        args.addAll(List.of("--method", "full", "--lr", "1e-4", "--max-steps", "2", "--save-steps", "2"));
        CliRun r = CliRun.of(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("reference log-probs precomputed").contains("reference log-probs: ");
        JsonNode ref = JSON.readTree(out.resolve("ref_logps.json").toFile());
        assertThat(ref.get("pairs").size()).isEqualTo(24);
        assertThat(out.resolve("model/model.safetensors")).exists();
        var more = base("dpo", data, out);
        more.addAll(List.of("--method", "full", "--lr", "1e-4", "--max-steps", "4", "--save-steps", "2", "--resume", "latest"));
        CliRun resumed = CliRun.of(more.toArray(String[]::new));
        assertThat(resumed.code()).as(resumed.err() + resumed.out()).isZero();
        assertThat(resumed.out()).contains("reference log-probs: read");
    }

    @Test
    void orpoSimpoKtoAndIpoRunWithTheirMetrics() throws Exception {
        Path data = pairs(32);
        for (var c : List.of(List.of("orpo", "nll_loss", "log_odds_ratio"), List.of("simpo", "rewards/margins"), List.of("dpo", "rewards/margins", "--loss-type", "ipo"))) {
            Path out = tmp.resolve(c.get(0) + c.size());
            var args = base(c.get(0), data, out);
            args.addAll(List.of("--max-steps", "4"));
            if (c.contains("--loss-type")) args.addAll(List.of("--loss-type", "ipo"));
            CliRun r = CliRun.of(args.toArray(String[]::new));
            assertThat(r.code()).as(c + r.err() + r.out()).isZero();
            JsonNode first = metrics(out).getFirst();
            assertThat(first.has(c.get(1))).as(c + " logs " + c.get(1)).isTrue();
            if (c.get(0).equals("orpo")) assertThat(first.has(c.get(2))).isTrue();
            assertThat(Double.isFinite(first.get("loss").asDouble())).isTrue();
        }
        var sb = new StringBuilder();
        for (int i = 0; i < 24; i++)
            sb.append(String.format("{\"prompt\": \"What colour does %s like?\", \"completion\": \"%s likes %s.\", \"label\": %s}%n",
                    NAMES[i % 6], NAMES[i % 6], COLOURS[(i + i / 6) % 6], i / 6 == 0));
        Path kto = tmp.resolve("kto.jsonl");
        Files.writeString(kto, sb.toString());
        Path out = tmp.resolve("kto-run");
        var args = base("kto", kto, out);
        args.addAll(List.of("--max-steps", "4"));
        CliRun r = CliRun.of(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(metrics(out).getFirst().has("kl")).isTrue();
        // full fine-tuning's KTO reference is a frozen copy of the starting weights (KL rows change every batch: nothing to precompute)
        Path fullKto = tmp.resolve("kto-full");
        var fk = base("kto", kto, fullKto);
        fk.addAll(List.of("--method", "full", "--lr", "1e-4", "--max-steps", "2"));
        CliRun full = CliRun.of(fk.toArray(String[]::new));
        assertThat(full.code()).as(full.err() + full.out()).isZero();
        assertThat(full.out()).contains("a frozen copy of the starting model").contains("reference model (frozen copy");
        assertThat(fullKto.resolve("model/model.safetensors")).exists();
        // the wrong kind of data for a stage is a named error, and nothing is trained
        Path wrong = tmp.resolve("wrong");
        CliRun bad = CliRun.of(base("dpo", kto, wrong).toArray(String[]::new));
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("kto.jsonl").contains("KTO data").contains("--stage kto").doesNotContain("Exception");
        assertThat(wrong.resolve("metrics.jsonl")).doesNotExist();
    }

    @Test
    void sftThenDpoInOneRunFolderWithOneReport() throws Exception {
        var sb = new StringBuilder("[");
        for (int i = 0; i < 48; i++)
            sb.append(i == 0 ? "" : ",").append(String.format("{\"instruction\": \"What colour does %s like?\", \"output\": \"%s likes %s.\"}", NAMES[i % 6], NAMES[i % 6], COLOURS[i % 6]));
        Path sft = tmp.resolve("sft.json");
        Files.writeString(sft, sb.append("]").toString());
        Path out = tmp.resolve("staged"), yaml = tmp.resolve("stages.yaml");
        Files.writeString(yaml, "model: " + model + "\nout: " + out + "\nprompt-style: alpaca\nmax-seq-len: 128\nbatch-size: 4\nseed: 3\n"
                + "stages:\n  - stage: sft\n    data: " + sft + "\n    r: 4\n    lora-alpha: 8\n    max-steps: 6\n    lr: 3e-3\n"
                + "  - stage: dpo\n    data: " + pairs(24) + "\n    max-steps: 4\n    beta: 0.2\n    lora-dropout: 0\n");
        CliRun r = CliRun.of("train", "--config", yaml.toString());
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("stage 1/2: sft").contains("stage 2/2: dpo").contains("starting from " + out.resolve("1-sft/adapter"))
                .contains("also the frozen reference");
        assertThat(out.resolve("1-sft/adapter/adapter_config.json")).exists();
        assertThat(out.resolve("2-dpo/adapter/adapter_config.json")).exists();
        JsonNode dpoCfg = JSON.readTree(out.resolve("2-dpo/run_config.json").toFile());
        assertThat(dpoCfg.get("adapter").asText()).isEqualTo(out.resolve("1-sft/adapter").toString());
        assertThat(dpoCfg.get("beta").asDouble()).isEqualTo(0.2);
        assertThat(Files.readString(out.resolve("report.html"))).contains("Stage 1: sft").contains("Stage 2: dpo");
        // a DPO stage that starts from the SFT adapter starts at policy = reference: loss log 2
        assertThat(metrics(out.resolve("2-dpo")).getFirst().get("loss").asDouble()).isCloseTo(Math.log(2), org.assertj.core.data.Offset.offset(1e-3));
    }

    /** What a careful user tried (review of issue 10): each is a named error, exit 2, and nothing is trained or deleted. */
    @Test
    void badPreferenceRunsAreNamedAndTouchNothing() throws Exception {
        Path data = pairs(16);
        java.util.function.BiConsumer<CliRun, String> refused = (r, msg) -> {
            assertThat(r.code()).as(r.err() + r.out()).isEqualTo(2);
            assertThat(r.err()).contains(msg).doesNotContain("Exception");
        };
        // --overwrite replaces a run folder, never a folder of the user's own files
        Path mine = tmp.resolve("mine");
        Files.createDirectories(mine);
        Files.writeString(mine.resolve("notes.txt"), "keep me");
        var ow = base("dpo", data, mine);
        ow.addAll(List.of("--max-steps", "1", "--overwrite"));
        refused.accept(CliRun.of(ow.toArray(String[]::new)), "holds other files");
        assertThat(Files.readString(mine.resolve("notes.txt"))).isEqualTo("keep me");
        // SimPO and ORPO are stages, not DPO loss types
        var lt = base("dpo", data, tmp.resolve("lt"));
        lt.addAll(List.of("--loss-type", "simpo"));
        refused.accept(CliRun.of(lt.toArray(String[]::new)), "use --stage simpo");
        // KTO's KL estimate needs another example in the batch
        Path kto = tmp.resolve("k.jsonl");
        Files.writeString(kto, "{\"prompt\": \"Hi\", \"completion\": \"Hello.\", \"label\": true}\n{\"prompt\": \"Hi\", \"completion\": \"Go.\", \"label\": false}\n");
        var kb = base("kto", kto, tmp.resolve("kb"));
        kb.set(kb.indexOf("--batch-size") + 1, "1");
        refused.accept(CliRun.of(kb.toArray(String[]::new)), "batch-size must be >= 2 for --stage kto");
        // SFT on KTO rows would learn the undesirable completions
        refused.accept(CliRun.of(base("sft", kto, tmp.resolve("sk")).toArray(String[]::new)), "--stage kto");
        // a resumed DPO run must keep its loss: a changed beta is listed
        Path run = tmp.resolve("beta");
        var first = base("dpo", data, run);
        first.addAll(List.of("--max-steps", "2", "--val-ratio", "0"));
        assertThat(CliRun.of(first.toArray(String[]::new)).code()).isZero();
        var again = base("dpo", data, run);
        again.addAll(List.of("--max-steps", "4", "--val-ratio", "0", "--beta", "0.5", "--resume"));
        refused.accept(CliRun.of(again.toArray(String[]::new)), "beta: 0.1 → 0.5");
        // a later stage's bad key stops the run before the first stage trains
        Path staged = tmp.resolve("staged"), yaml = tmp.resolve("bad.yaml"), sft = tmp.resolve("sft.json");
        Files.writeString(sft, "[{\"instruction\": \"Hi\", \"output\": \"Hello.\"}, {\"instruction\": \"Bye\", \"output\": \"Bye.\"}]");
        Files.writeString(yaml, "model: " + model + "\nout: " + staged + "\nprompt-style: alpaca\nmax-seq-len: 128\n"
                + "stages:\n  - {stage: sft, data: " + sft + "}\n  - {stage: dpo, data: " + data + ", beta: -2}\n");
        refused.accept(CliRun.of("train", "--config", yaml.toString()), "beta must be positive");
        assertThat(staged.resolve("1-sft")).doesNotExist();
        // … and so does a later stage's data of the wrong kind (KTO rows to a dpo stage)
        Files.writeString(yaml, "model: " + model + "\nout: " + staged + "\nprompt-style: alpaca\nmax-seq-len: 128\n"
                + "stages:\n  - {stage: sft, data: " + sft + "}\n  - {stage: dpo, data: " + kto + "}\n");
        refused.accept(CliRun.of("train", "--config", yaml.toString()), "stage 2 (dpo) needs pairs");
        assertThat(staged.resolve("1-sft")).doesNotExist();
        // a stages run never writes into a folder of the user's own files
        Files.writeString(yaml, "model: " + model + "\nout: " + mine + "\nprompt-style: alpaca\nmax-seq-len: 128\n"
                + "stages:\n  - {stage: dpo, data: " + data + ", max-steps: 1}\n");
        refused.accept(CliRun.of("train", "--config", yaml.toString(), "--overwrite"), "not a tune4j stages run");
        try (var files = Files.list(mine)) {
            assertThat(files.map(f -> f.getFileName().toString()).toList()).containsExactly("notes.txt");
        }
    }

    /** Pre-tokenized pairs (TRL's column names) train on a model folder without a tokenizer; ids outside the vocabulary are named. */
    @Test
    void preTokenizedPairsTrainWithoutATokenizer() throws Exception {
        Path golden = dev.tune4j.Golden.golden("models/llama-untied");
        Path pairs = tmp.resolve("ids.jsonl");
        Files.writeString(pairs, "{\"prompt_ids\": [5, 6, 7], \"chosen_ids\": [8, 9, 2], \"rejected_ids\": [10, 2]}\n".repeat(6));
        var args = new ArrayList<>(List.of("train", "--model", golden.toString(), "--data", pairs.toString(), "--out", tmp.resolve("ids").toString(),
                "--stage", "dpo", "--max-steps", "2", "--batch-size", "2", "--val-ratio", "0"));
        CliRun r = CliRun.of(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        Files.writeString(pairs, "{\"prompt_ids\": [5, 6, 7], \"chosen_ids\": [8, 9, 300], \"rejected_ids\": [10, 2]}\n".repeat(2));
        args.set(args.indexOf("--out") + 1, tmp.resolve("ids2").toString());
        CliRun bad = CliRun.of(args.toArray(String[]::new));
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("ids.jsonl").contains("token id 300 is outside the model's vocabulary (0..255)").doesNotContain("Exception");
    }
}
