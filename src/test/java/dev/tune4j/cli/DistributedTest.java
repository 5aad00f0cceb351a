package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.data.Synthetic;
import dev.tune4j.hf.Safetensors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Data-parallel training through the CLI, with real worker processes over Gloo: 2 processes at --batch-size 2 train
 * what 1 process trains at --batch-size 4 (the same weights within 5e-5 after 20 steps (summation order), the same loss step for step),
 * for LoRA, full fine-tuning with and without ZeRO, and DPO; a worker killed with SIGKILL stops the job within 60 s
 * naming its rank, and --resume latest finishes it as an uninterrupted run would; a peer that never arrives is named
 * after --dist-timeout; a changed world size on resume is refused.
 */
class DistributedTest {
    static Path tmp, model, sft, pairs;

    @BeforeAll
    static void setup() throws Exception {
        tmp = Files.createTempDirectory("tune4j-dist");
        model = EmbeddedModel.stories260k();
        var json = new ObjectMapper();
        var rows = new ArrayList<Map<String, String>>();
        var prefs = new ArrayList<Map<String, String>>();
        for (String[] qa : Synthetic.animalQuestions(7).subList(0, 90)) {
            rows.add(Map.of("instruction", qa[0], "input", "", "output", qa[1]));
            prefs.add(Map.of("instruction", qa[0], "input", "", "chosen", qa[1] + " Wow, what fun!", "rejected", qa[1]));
        }
        sft = Files.writeString(tmp.resolve("sft.json"), json.writeValueAsString(rows));
        pairs = Files.writeString(tmp.resolve("pairs.json"), json.writeValueAsString(prefs));
    }

    static List<String> args(String setup, Path out, int batch, String... more) {
        var a = new ArrayList<>(List.of("train", "--model", model.toString(), "--out", out.toString(), "--batch-size", String.valueOf(batch),
                "--max-steps", "20", "--samples", "0", "--val-ratio", "0.1", "--lr", "1e-3"));
        switch (setup) {
            case "lora" -> a.addAll(List.of("--data", sft.toString(), "--lora-dropout", "0"));
            case "dpo" -> a.addAll(List.of("--data", pairs.toString(), "--stage", "dpo", "--lora-dropout", "0"));
            default -> { // full, full --zero N
                a.addAll(List.of("--data", sft.toString(), "--method", "full"));
                if (setup.contains("--zero")) a.addAll(List.of("--zero", setup.substring(setup.length() - 1)));
            }
        }
        a.addAll(List.of(more));
        return a;
    }

    @ParameterizedTest
    @ValueSource(strings = {"lora", "full", "full --zero 1", "full --zero 2", "dpo"})
    void twoProcessesAtBatchTwoTrainWhatOneProcessTrainsAtBatchFour(String setup) throws Exception {
        String name = setup.replace(" ", "").replace("--", "-");
        Path one = tmp.resolve(name + "-one"), two = tmp.resolve(name + "-two");
        var single = CliRun.of(args(setup, one, 4).toArray(String[]::new));
        assertThat(single.code()).as(single.err() + single.out()).isZero();
        var log = launch(args(setup, two, 2, "--nproc-per-node", "2"), tmp.resolve(name + ".log"), Map.of());
        assertThat(log.code).as(log.text).isZero();
        assertThat(log.text).contains("data parallel: 2 processes (Gloo), global batch 4 = --batch-size 2 per process × 2 processes × --grad-accum 1")
                .contains("memory per rank: planner predicted").containsPattern("rank 1 \\d+ MiB");
        assertSameLosses(one, two);
        String weights = setup.startsWith("full") ? "model/model.safetensors" : "adapter/adapter_model.safetensors";
        assertSameTensors(one.resolve(weights), two.resolve(weights), SUMMATION_ORDER);
        // only rank 0 wrote the run folder: one metrics line per step, one checkpoint
        assertThat(Files.readAllLines(two.resolve("metrics.jsonl"))).hasSize(20);
        if (setup.contains("--zero")) // the checkpoint holds the whole optimizer state, gathered from both ranks
            assertSameTensors(one.resolve("checkpoints/step-20/optimizer.safetensors"), two.resolve("checkpoints/step-20/optimizer.safetensors"), SUMMATION_ORDER);
    }

    @Test
    void aKilledWorkerStopsTheJobNamingItsRankAndResumeLatestFinishesIt() throws Exception {
        Path out = tmp.resolve("killed");
        var job = args("lora", out, 2, "--nproc-per-node", "2", "--max-steps", "80", "--save-steps", "5", "--keep-last", "2");
        Path logFile = tmp.resolve("killed.log");
        Process launcher = start(job, logFile, Map.of());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!Files.isDirectory(out.resolve("checkpoints/step-5")) && launcher.isAlive() && System.nanoTime() < deadline) Thread.sleep(5);
        var m = Pattern.compile("rank 1 pid (\\d+)").matcher(Files.readString(logFile));
        assertThat(m.find()).as(Files.readString(logFile)).isTrue();
        ProcessHandle worker = ProcessHandle.of(Long.parseLong(m.group(1))).orElseThrow();
        assertThat(worker.destroyForcibly()).as("rank 1 was still running when killed").isTrue();
        long killed = System.nanoTime();
        assertThat(launcher.waitFor(60, TimeUnit.SECONDS)).as("the job stopped within 60 s").isTrue();
        double seconds = (System.nanoTime() - killed) / 1e9;
        String text = Files.readString(logFile);
        assertThat(launcher.exitValue()).as(text).isEqualTo(1);
        assertThat(text).contains("error: rank 1 of 2 was killed by SIGKILL").contains("--resume latest");
        assertThat(out.resolve("adapter")).as("the run did not finish before the kill").doesNotExist();
        assertThat(seconds).isLessThan(60);

        // one process cannot continue a two-process run: its batches would differ
        var refused = CliRun.of(args("lora", out, 2, "--max-steps", "80", "--save-steps", "5", "--keep-last", "2", "--resume", "latest").toArray(String[]::new));
        assertThat(refused.code()).isEqualTo(2);
        assertThat(refused.err()).contains("was trained by 2 process(es), this run has 1").doesNotContain("at dev.tune4j");

        var resumed = launch(args("lora", out, 2, "--nproc-per-node", "2", "--max-steps", "80", "--save-steps", "5", "--keep-last", "2", "--resume", "latest"),
                tmp.resolve("resumed.log"), Map.of());
        assertThat(resumed.code).as(resumed.text).isZero();
        assertThat(resumed.text).contains("resumed from");
        Path straight = tmp.resolve("straight");
        var one = CliRun.of(args("lora", straight, 4, "--max-steps", "80", "--save-steps", "5", "--keep-last", "2").toArray(String[]::new));
        assertThat(one.code()).as(one.err()).isZero();
        assertSameTensors(straight.resolve("adapter/adapter_model.safetensors"), out.resolve("adapter/adapter_model.safetensors"), SUMMATION_ORDER);
        assertSameLosses(straight, out);
    }

    @Test
    void aPeerThatNeverArrivesIsNamedAfterTheTimeout() throws Exception {
        int port;
        try (var s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        var env = Map.of("WORLD_SIZE", "2", "RANK", "0", "LOCAL_RANK", "0", "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", String.valueOf(port));
        long t0 = System.nanoTime();
        var alone = launch(args("lora", tmp.resolve("alone"), 2, "--dist-timeout", "3"), tmp.resolve("alone.log"), env);
        assertThat(alone.code).as(alone.text).isEqualTo(1);
        assertThat(alone.text).contains("error: rank 0: rendezvous at 127.0.0.1:" + port + ": 1 of 2 workers arrived within 3 s").doesNotContain("\tat ");
        assertThat((System.nanoTime() - t0) / 1e9).isLessThan(60);

        // two workers started by hand with different settings: named, not trained
        int port2;
        try (var s = new ServerSocket(0)) {
            port2 = s.getLocalPort();
        }
        var workers = new ArrayList<Process>();
        for (int r = 0; r < 2; r++)
            workers.add(start(args("lora", tmp.resolve("mismatch"), 2, "--max-steps", String.valueOf(5 + r)), tmp.resolve("mismatch" + r + ".log"),
                    Map.of("WORLD_SIZE", "2", "RANK", String.valueOf(r), "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", String.valueOf(port2))));
        for (Process w : workers) assertThat(w.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(workers.get(0).exitValue()).isEqualTo(2);
        assertThat(Files.readString(tmp.resolve("mismatch0.log"))).contains("error: rank 1 was started with other settings or data files than rank 0");
        assertThat(tmp.resolve("mismatch")).doesNotExist();

        var bad = launch(args("lora", tmp.resolve("bad"), 2), tmp.resolve("bad.log"), Map.of("WORLD_SIZE", "2", "RANK", "2", "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "1"));
        assertThat(bad.code).as(bad.text).isEqualTo(2);
        assertThat(bad.text).contains("error: RANK: expected an integer from 0 to 1, found '2'");
    }

    // ---- helpers ----

    record Log(int code, String text) {}

    static Process start(List<String> args, Path logFile, Map<String, String> env) throws IOException {
        var cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-Dorg.bytedeco.javacpp.maxphysicalbytes=0", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(args);
        var pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(logFile.toFile());
        for (String k : List.of("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE", "NODE_RANK")) pb.environment().remove(k);
        pb.environment().putAll(env);
        return pb.start();
    }

    static Log launch(List<String> args, Path logFile, Map<String, String> env) throws Exception {
        Process p = start(args, logFile, env);
        if (!p.waitFor(300, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            throw new AssertionError("did not finish in 300 s: " + Files.readString(logFile));
        }
        return new Log(p.exitValue(), Files.readString(logFile));
    }

    /**
     * Two ranks' all-reduced gradient and one process's batch sum add the same terms in another order; AdamW divides by
     * √v, which turns that last-bit noise on near-zero gradients into visible update differences. Measured over 20
     * steps of stories260K: ≤ 1e-5 on the CI machine of issue 14, 1.46e-5 on an AVX-512 (AVX512_BF16) one. Losses and
     * gradient norms drift as far over a long run: 2.7e-5 (relative) in grad_norm at step 53 of 80 once the head's
     * backward was written by hand (another rounding of the same softmax gradient).
     */
    static final double SUMMATION_ORDER = 5e-5;

    static void assertSameTensors(Path a, Path b, double tolerance) {
        try (var x = Safetensors.open(a); var y = Safetensors.open(b)) {
            var names = x.tensors().stream().map(t -> t.name()).sorted().toList();
            assertThat(y.tensors().stream().map(t -> t.name()).sorted().toList()).isEqualTo(names);
            double worst = 0;
            for (String n : names) {
                if (x.info(n).dtype() != dev.tune4j.hf.DType.F32) continue;
                float[] u = x.floats(n), v = y.floats(n);
                for (int i = 0; i < u.length; i++) worst = Math.max(worst, Math.abs(u[i] - v[i]));
            }
            assertThat(worst).as("largest difference in " + b).isLessThanOrEqualTo(tolerance);
        }
    }

    static void assertSameLosses(Path one, Path two) throws IOException {
        var json = new ObjectMapper();
        List<String> a = Files.readAllLines(one.resolve("metrics.jsonl")), b = Files.readAllLines(two.resolve("metrics.jsonl"));
        assertThat(b).hasSameSizeAs(a);
        for (int i = 0; i < a.size(); i++) {
            JsonNode x = json.readTree(a.get(i)), y = json.readTree(b.get(i));
            assertThat(y.get("step").asLong()).isEqualTo(x.get("step").asLong());
            for (String k : List.of("loss", "grad_norm", "val_loss"))
                if (x.has(k)) assertThat(y.get(k).asDouble()).as(k + " at step " + x.get("step")).isCloseTo(x.get(k).asDouble(), org.assertj.core.data.Offset.offset(SUMMATION_ORDER * Math.max(1, Math.abs(x.get(k).asDouble()))));
        }
    }
}
