package dev.tune4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.cli.Main;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.hf.TensorInfo;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** LoRA SFT end to end on the embedded stories260K: learning, config files, exact resume after a kill, NaN stop, early stopping. */
class TrainingTest {
    @TempDir
    Path tmp;

    static Path model;
    static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void setup() throws Exception {
        model = EmbeddedModel.stories260k();
    }

    /** A learnable task the base model cannot do: answer with the colour paired with each name. */
    Path task(int n) throws Exception {
        String[] names = {"Lily", "Tom", "Ben", "Sue", "Max", "Amy"}, colours = {"red", "blue", "green", "pink", "brown", "gold"};
        var sb = new StringBuilder("[");
        var rnd = new Random(1);
        for (int i = 0; i < n; i++) {
            int k = rnd.nextInt(names.length);
            sb.append(i == 0 ? "" : ",").append("{\"instruction\": \"What colour does ").append(names[k]).append(" like?\", \"output\": \"")
                    .append(names[k]).append(" likes ").append(colours[k]).append(".\"}");
        }
        Path f = tmp.resolve("task.json");
        Files.writeString(f, sb.append("]").toString());
        return f;
    }

    static CliRun cli(String... args) {
        return CliRun.of(args);
    }

    List<String> base(Path data, Path out) {
        return new ArrayList<>(List.of("train", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(),
                "--r", "8", "--lora-alpha", "16", "--lr", "3e-3", "--batch-size", "8", "--max-seq-len", "48", "--seed", "7"));
    }

    @Test
    void loraSftLearnsAndWritesARunFolder() throws Exception {
        Path out = tmp.resolve("run");
        var args = base(task(96), out);
        Path general = tmp.resolve("general.txt");
        Files.writeString(general, "Once upon a time, there was a little girl named Lily. She loved to play outside.\n\nTom had a red ball.\n");
        args.addAll(List.of("--epochs", "3", "--packing", "--general-file", general.toString()));
        CliRun r = cli(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("validation before training").containsPattern("planner: predicted peak memory \\d+ MiB at batch")
                .containsPattern("memory: measured peak \\d+ MiB in training, planner predicted \\d+ MiB");
        List<JsonNode> lines = new ArrayList<>();
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) lines.add(JSON.readTree(l));
        assertThat(lines.getFirst().fieldNames()).toIterable().contains("step", "loss", "lr", "grad_norm", "tokens_per_s");
        double firstLoss = lines.getFirst().get("loss").asDouble(), lastLoss = lines.getLast().get("loss").asDouble();
        assertThat(lastLoss).as("train loss falls").isLessThan(firstLoss * 0.5);
        JsonNode lastEval = lines.stream().filter(l -> l.has("val_loss")).reduce((a, b) -> b).orElseThrow();
        assertThat(lastEval.get("val_loss").asDouble()).isLessThan(1.0);
        assertThat(out.resolve("run_config.json")).exists();
        // the report and what it is made of
        String html = Files.readString(out.resolve("report.html"));
        assertThat(html).contains("<svg", "Adapter spectrum", "Forgetting check", "Sample generations", "Configuration", "Time per phase");
        assertThat(JSON.readTree(out.resolve("forgetting.json").toFile()).has("tuned_perplexity")).isTrue();
        assertThat(JSON.readTree(out.resolve("spectrum.json").toFile())).hasSize(5 * 7);
        var summary = JSON.readTree(out.resolve("summary.json").toFile());
        assertThat(summary.get("peak_rss_mib").asDouble()).isPositive();
        assertThat(summary.get("training_peak_rss_mib").asDouble()).as("the loop's own peak, measured from its start, within the run's")
                .isPositive().isLessThanOrEqualTo(summary.get("peak_rss_mib").asDouble());
        assertThat(JSON.readTree(out.resolve("summary.json").toFile()).get("predicted_peak_mib").asLong()).isPositive();
        assertThat(JSON.readTree(out.resolve("summary.json").toFile()).get("predicted_parts_mib").fieldNames()).toIterable().contains("activations");
        assertThat(JSON.readTree(out.resolve("summary.json").toFile()).get("phase_seconds").fieldNames()).toIterable()
                .containsExactly("load", "forgetting base", "training", "final validation", "save", "adapter spectrum", "forgetting check", "samples", "report");
        assertThat(lines.getFirst().get("rss_mib").asDouble()).isPositive();
        assertThat(Files.readString(out.resolve("report.html"))).doesNotContain("the planner arrives with issue 5");
        Files.delete(out.resolve("report.html"));
        assertThat(cli("report", out.toString()).code()).isZero();
        assertThat(out.resolve("report.html")).exists();
        Path tbFile;
        try (var s = Files.list(out.resolve("tensorboard"))) {
            tbFile = s.filter(p -> p.getFileName().toString().startsWith("events.out.tfevents.")).findFirst().orElseThrow();
        }
        var losses = TensorBoardTest.read(tbFile).stream().filter(e -> e instanceof TensorBoardTest.Scalar sc && sc.tag().equals("train/loss"))
                .map(e -> (TensorBoardTest.Scalar) e).toList();
        assertThat(losses).hasSize(lines.size());
        assertThat((double) losses.getLast().value()).isCloseTo(lastLoss, org.assertj.core.data.Offset.offset(1e-5));
        assertThat(out.resolve("adapter/adapter_config.json")).exists();
        try (Safetensors a = Safetensors.open(out.resolve("adapter/adapter_model.safetensors"))) {
            assertThat(a.tensors()).hasSize(5 * 7 * 2);
            assertThat(a.tensors().stream().map(TensorInfo::name)).allMatch(n -> n.startsWith("base_model.model.model.layers."));
        }
        CliRun gen = cli("generate", "--model", model.toString(), "--adapter", out.resolve("adapter").toString(),
                "--prompt", "### Instruction:\nWhat colour does Tom like?\n\n### Response:\n", "--max-new-tokens", "8");
        assertThat(gen.code()).as(gen.err()).isZero();
        assertThat(gen.out()).contains("Tom likes"); // the answer format is learned (the tiny model may still miss the colour)
        CliRun before = cli("generate", "--model", model.toString(), "--prompt", "### Instruction:\nWhat colour does Tom like?\n\n### Response:\n", "--max-new-tokens", "8");
        assertThat(before.out()).doesNotContain("Tom likes");
    }

    @Test
    void yamlRunFileWithFlagOverride() throws Exception {
        Path out = tmp.resolve("yaml-run");
        Path yaml = tmp.resolve("run.yaml");
        Files.writeString(yaml, "model: " + model + "\ndata: " + task(24) + "\nout: " + out + "\nr: 4\nlora-alpha: 8\nmax-steps: 3\nbatch-size: 4\ntarget-modules: [q_proj, v_proj]\n");
        CliRun r = cli("train", "--config", yaml.toString(), "--r", "2");
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        JsonNode cfg = JSON.readTree(out.resolve("run_config.json").toFile());
        assertThat(cfg.get("r").asInt()).as("flag overrides the file").isEqualTo(2);
        assertThat(cfg.get("target-modules").asText()).isEqualTo("q_proj,v_proj");
        JsonNode adapterCfg = JSON.readTree(out.resolve("adapter/adapter_config.json").toFile());
        assertThat(adapterCfg.get("r").asInt()).isEqualTo(2);
        Files.writeString(yaml, "model: x\nbogus-key: 1\n");
        CliRun bad = cli("train", "--config", yaml.toString());
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("unknown key 'bogus-key'").contains("run.yaml");
    }

    @Test
    void resumeAfterAKillEndsBitIdentical() throws Exception {
        Path data = task(160);
        Path full = tmp.resolve("full"), killed = tmp.resolve("killed");
        List<String> common = List.of("--max-steps", "40", "--save-steps", "4", "--keep-last", "2", "--lora-dropout", "0.1", "--grad-accum", "2", "--batch-size", "4");
        var a = base(data, full);
        a.addAll(common);
        assertThat(cli(a.toArray(String[]::new)).code()).isZero();

        var b = base(data, killed);
        b.addAll(common);
        killAfterFirstCheckpoint(b, killed, tmp.resolve("killed.log"));
        assertThat(killed.resolve("adapter")).as("killed before the end").doesNotExist();

        var resumed = base(data, killed);
        resumed.addAll(common);
        resumed.addAll(List.of("--resume", "latest"));
        CliRun r = cli(resumed.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("resumed from");
        assertSameAdapter(full, killed);
    }

    @Test
    void nanLossStopsWithAClearMessageAndKeepsTheCheckpoint() throws Exception {
        Path out = tmp.resolve("nan");
        var args = base(task(64), out);
        args.addAll(List.of("--max-steps", "30", "--save-steps", "1", "--lr", "1e38", "--max-grad-norm", "1e30", "--keep-last", "30"));
        CliRun r = cli(args.toArray(String[]::new));
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).contains("loss became NaN").contains("Last good checkpoint").doesNotContain("\tat ");
        try (var s = Files.list(out.resolve("checkpoints"))) {
            assertThat(s.filter(x -> x.getFileName().toString().startsWith("step-")).count()).isGreaterThanOrEqualTo(1);
        }
        assertThat(out.resolve("adapter")).doesNotExist();
    }

    @Test
    void earlyStoppingAndCheckpointRetention() throws Exception {
        Path out = tmp.resolve("early");
        var args = base(task(64), out);
        args.addAll(List.of("--max-steps", "60", "--eval-steps", "2", "--save-steps", "2", "--early-stopping-patience", "2", "--lr", "3e-2",
                "--keep-best", "1", "--keep-last", "1"));
        CliRun r = cli(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("early stopping at step");
        try (var s = Files.list(out.resolve("checkpoints"))) {
            assertThat(s.count()).as("best + last").isBetween(1L, 2L);
        }
    }

    /** The LoRA keys apply to LoRA only: full fine-tuning is given none of them. */
    List<String> fullBase(Path data, Path out) {
        var args = base(data, out);
        for (String k : List.of("--r", "--lora-alpha")) {
            int i = args.indexOf(k);
            args.subList(i, i + 2).clear();
        }
        return args;
    }

    @Test
    void fullFineTuningWritesAModelFolderAndResumes() throws Exception {
        Path data = task(48), out = tmp.resolve("full");
        var args = fullBase(data, out);
        args.addAll(List.of("--method", "full", "--lr", "1e-3", "--max-steps", "3", "--save-steps", "3", "--keep-last", "2"));
        CliRun r = cli(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("all trainable");
        var more = fullBase(data, out);
        more.addAll(List.of("--method", "full", "--lr", "1e-3", "--max-steps", "6", "--save-steps", "3", "--keep-last", "2", "--resume", "latest"));
        CliRun resumed = cli(more.toArray(String[]::new));
        assertThat(resumed.code()).as(resumed.err() + resumed.out()).isZero();
        assertThat(resumed.out()).contains("resumed from").contains("at step 3");
        try (var f = dev.tune4j.hf.ModelFolder.open(out.resolve("model"))) {
            f.validate();
            assertThat(f.names()).contains("model.layers.0.mlp.up_proj.weight");
        }
        assertThat(out.resolve("model/tokenizer.json")).exists();
        assertThat(out.resolve("report.html")).exists();
        var lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertThat(lines).hasSize(6);
        assertThat(JSON.readTree(lines.getLast()).get("loss").asDouble()).isLessThan(JSON.readTree(lines.getFirst()).get("loss").asDouble());
    }

    @Test
    void resumeRefusesAChangedSeedBatchOrDataNamingTheDifferences() throws Exception {
        Path data = task(32), out = tmp.resolve("changed");
        var args = base(data, out);
        args.addAll(List.of("--max-steps", "2", "--val-ratio", "0"));
        CliRun r = cli(args.toArray(String[]::new));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        String before = Files.readString(out.resolve("metrics.jsonl"));
        Files.writeString(data, Files.readString(data).replace("likes", "loves"));
        var more = base(data, out);
        more.set(more.indexOf("--seed") + 1, "8");
        more.set(more.indexOf("--batch-size") + 1, "4");
        more.addAll(List.of("--max-steps", "4", "--val-ratio", "0", "--resume", "latest"));
        CliRun resumed = cli(more.toArray(String[]::new));
        assertThat(resumed.code()).as(resumed.err() + resumed.out()).isEqualTo(2);
        assertThat(resumed.err()).contains("--resume: this run differs").contains("seed: 7 → 8").contains("batch-size: 8 → 4").contains("data sha256")
                .doesNotContain("Exception");
        assertThat(Files.readString(out.resolve("metrics.jsonl"))).as("the old run is untouched").isEqualTo(before);
    }

    @Test
    void doraTrainsForLoraAndQloraAndItsAdapterLoadsBack() throws Exception {
        Path data = task(32);
        for (String method : List.of("lora", "qlora")) {
            Path out = tmp.resolve("dora-" + method);
            var args = base(data, out);
            args.addAll(List.of("--use-dora", "--method", method, "--max-steps", "3", "--val-ratio", "0"));
            CliRun r = cli(args.toArray(String[]::new));
            assertThat(r.code()).as(method + r.err() + r.out()).isZero();
            assertThat(r.out()).contains("DoRA r=8");
            JsonNode cfg = JSON.readTree(out.resolve("adapter/adapter_config.json").toFile());
            assertThat(cfg.get("use_dora").asBoolean()).as("PEFT's use_dora").isTrue();
            try (Safetensors st = Safetensors.open(out.resolve("adapter/adapter_model.safetensors"))) {
                var names = st.tensors().stream().map(TensorInfo::name).toList();
                assertThat(names).contains("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector");
                float[] m = st.floats("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector");
                for (float x : m) assertThat(x).as("magnitudes are positive row norms").isPositive();
            }
            assertThat(out.resolve("spectrum.json")).as("no r-dimensional spectrum for a DoRA update").doesNotExist();
            CliRun ev = cli("eval", "--model", model.toString(), "--adapter", out.resolve("adapter").toString(), "--data", data.toString(), "--prompt-style", "alpaca", "--max-seq-len", "48", "--json");
            assertThat(ev.code()).as(ev.err()).isZero();
        }
    }

    /** The two runs' adapters are bit-identical. */
    static void assertSameAdapter(Path runA, Path runB) throws Exception {
        try (Safetensors x = Safetensors.open(runA.resolve("adapter/adapter_model.safetensors"));
             Safetensors y = Safetensors.open(runB.resolve("adapter/adapter_model.safetensors"))) {
            for (TensorInfo t : x.tensors()) assertThat(y.floats(t.name())).as(t.name()).containsExactly(x.floats(t.name()));
        }
    }

    @Test
    void sigtermStopsBetweenStepsWithoutACrashAndTheRunResumes() throws Exception {
        Path data = task(96), out = tmp.resolve("term");
        var args = base(data, out);
        args.addAll(List.of("--max-steps", "200", "--save-steps", "2", "--val-ratio", "0"));
        Process p = startChild(args, tmp.resolve("term.log"));
        waitForCheckpoint(p, out);
        p.destroy(); // SIGTERM
        assertThat(p.waitFor(90, TimeUnit.SECONDS)).as("exits within the step under way").isTrue();
        assertThat(p.exitValue()).as(Files.readString(tmp.resolve("term.log"))).isEqualTo(143);
        try (var files = Files.list(tmp)) {
            assertThat(files.map(f -> f.getFileName().toString()).filter(f -> f.startsWith("hs_err"))).as("no JVM crash file").isEmpty();
        }
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"))) JSON.readTree(line); // every line whole
        var resumed = base(data, out);
        resumed.addAll(List.of("--max-steps", "8", "--save-steps", "2", "--val-ratio", "0", "--resume"));
        CliRun r = cli(resumed.toArray(String[]::new));
        if (r.code() == 2) assertThat(r.err()).contains("nothing left to train"); // it had already passed step 8
        else assertThat(r.code()).as(r.err() + r.out()).isZero();
    }

    static Process startChild(List<String> args, Path logFile) throws Exception {
        var cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(args);
        return new ProcessBuilder(cmd).directory(logFile.getParent().toFile()).redirectErrorStream(true).redirectOutput(logFile.toFile()).start();
    }

    static void waitForCheckpoint(Process p, Path out) throws Exception {
        Path ckpts = out.resolve("checkpoints");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline && p.isAlive()) {
            if (Files.isDirectory(ckpts)) try (var s = Files.list(ckpts)) {
                if (s.anyMatch(x -> x.getFileName().toString().matches("step-\\d+"))) return;
            }
            Thread.sleep(5);
        }
    }

    /** Runs train in a child JVM and kills it (SIGKILL) as soon as its first checkpoint folder exists. */
    static void killAfterFirstCheckpoint(List<String> args, Path out, Path logFile) throws Exception {
        Process p = startChild(args, logFile);
        waitForCheckpoint(p, out);
        p.destroyForcibly().waitFor();
    }
}
