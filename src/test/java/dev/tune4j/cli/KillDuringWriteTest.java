package dev.tune4j.cli;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.train.Checkpoints;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 11: kill -9 while merge, quantize, export and a checkpoint write are under way. Afterwards the destination is the
 * old complete version or the new complete one (or, killed in the microseconds between the two renames that replace a
 * folder, absent with the old version parked beside it, which the next run moves back), and the next run leaves no
 * staging copy behind. Each command is killed at several moments after its staging copy appears; at least one kill must
 * land mid-write, or the test proved nothing.
 */
class KillDuringWriteTest {
    @TempDir
    static Path tmp;
    static Path model, adapter;

    /** A random Llama of ~10 M parameters (40 MB in f32): writing it takes long enough to be killed in the middle. */
    @BeforeAll
    static void makeModel() throws Exception {
        Path stories = EmbeddedModel.stories260k();
        var c = new ModelConfig(ModelConfig.Arch.LLAMA, 512, 384, 1024, 6, 6, 3, 64, 1e-5, 10_000, ModelConfig.RopeScaling.NONE,
                512, true, false, false, false, 0, 1, List.of(2), null, "float32");
        model = tmp.resolve("in/model");
        adapter = tmp.resolve("in/adapter");
        try (LlamaModel m = LlamaModel.random(c, 3, Compute.cpu())) {
            m.save(model, dev.tune4j.hf.DType.F32, Long.MAX_VALUE);
            try (LoraAdapter a = LoraAdapter.create(m, new LoraConfig(8, 16, 0, List.of("all-linear"), false), 5, model.toString())) {
                a.save(adapter);
            }
        }
        try (Stream<Path> s = Files.list(stories)) { // the stories260K tokenizer: same 512-token vocabulary
            for (Path p : s.toList()) if (p.getFileName().toString().startsWith("tokenizer")) Files.copy(p, model.resolve(p.getFileName()));
        }
    }

    @Test
    void merge() throws Exception {
        killRepeatedly("merged", dest -> new String[]{"merge", "--model", model.toString(), "--adapter", adapter.toString(), "--out", dest.toString(), "--dtype", "bf16"},
                dest -> new String[]{"merge", "--model", model.toString(), "--adapter", adapter.toString(), "--out", dest.toString(), "--dtype", "f32"});
    }

    @Test
    void quantize() throws Exception {
        killRepeatedly("q4", dest -> new String[]{"quantize", "--model", model.toString(), "--out", dest.toString(), "--quant", "fp4"},
                dest -> new String[]{"quantize", "--model", model.toString(), "--out", dest.toString(), "--quant", "nf4"});
    }

    @Test
    void exportGguf() throws Exception {
        killRepeatedly("model.gguf", dest -> new String[]{"export", "gguf", "--model", model.toString(), "--out", dest.toString(), "--dtype", "q8_0"},
                dest -> new String[]{"export", "gguf", "--model", model.toString(), "--out", dest.toString(), "--dtype", "f32"});
    }

    /**
     * {@code old} writes the version already at the destination, {@code fresh} the one being written when the kill comes.
     * Both are first written in-process elsewhere, to know what a complete version of each looks like.
     */
    void killRepeatedly(String name, java.util.function.Function<Path, String[]> old, java.util.function.Function<Path, String[]> fresh) throws Exception {
        Path ref = Files.createDirectories(tmp.resolve(name + "-ref"));
        run(old.apply(ref.resolve("old-" + name)));
        run(fresh.apply(ref.resolve("new-" + name)));
        var oldTree = OutputSafetyTest.tree(ref.resolve("old-" + name));
        var newTree = OutputSafetyTest.tree(ref.resolve("new-" + name));
        assertThat(newTree).isNotEqualTo(oldTree);

        int midWrite = 0;
        for (int delayMs : new int[]{0, 30, 120, 400, 1_000}) {
            Path parent = Files.createDirectories(tmp.resolve(name + "-kill-" + delayMs)), dest = parent.resolve(name);
            run(old.apply(dest));
            var args = new ArrayList<>(List.of(fresh.apply(dest)));
            args.add("--overwrite");
            Process p = startChild(args, parent.resolveSibling(name + "-" + delayMs + ".log"));
            // the destination's own staging copy or one staged beside that in turn, as merge's model files are (not the
            // writability probe that comes first)
            String tmpMark = name + ".tune4j-tmp-" + p.pid() + "-", oldMark = name + ".tune4j-old-" + p.pid() + "-";
            boolean seen = waitFor(p, () -> names(parent).stream().anyMatch(n -> n.startsWith(".") && n.contains(tmpMark)));
            Path log = parent.resolveSibling(name + "-" + delayMs + ".log");
            assertThat(seen || p.exitValue() == 0).as("the child failed: " + Files.readString(log)).isTrue();
            if (seen) Thread.sleep(delayMs);
            p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            boolean staged = names(parent).stream().anyMatch(n -> n.startsWith(".") && (n.contains(tmpMark) || n.contains(oldMark)));
            if (staged) midWrite++;

            if (Files.exists(dest)) assertThat(OutputSafetyTest.tree(dest)).as("after a kill %d ms into the write", delayMs).isIn(oldTree, newTree);
            else assertThat(names(parent)).as("only between the two renames: the old version parked beside it")
                    .anyMatch(n -> n.startsWith("." + name + ".tune4j-old-" + p.pid() + "-"));

            run(args.toArray(String[]::new)); // the next run: finds the dead process's staging and removes it
            assertThat(names(parent)).as("what the next run leaves beside " + dest).containsExactly(name);
            assertThat(OutputSafetyTest.tree(dest)).isEqualTo(newTree);
            if (midWrite >= 2) break;
        }
        assertThat(midWrite).as("kills that landed while a staging copy existed").isPositive();
    }

    @Test
    void checkpointWrite() throws Exception {
        Path data = tmp.resolve("task.jsonl");
        var rows = new StringBuilder();
        for (int i = 0; i < 64; i++) rows.append("{\"instruction\": \"Say ").append(i).append(".\", \"output\": \"").append(i).append(".\"}\n");
        Files.writeString(data, rows);
        int midWrite = 0;
        for (int delayMs : new int[]{0, 40, 150, 500}) {
            Path out = tmp.resolve("run-" + delayMs), ckpts = out.resolve("checkpoints");
            var args = new ArrayList<>(List.of("train", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(), "--method", "full",
                    "--prompt-style", "alpaca", "--batch-size", "2", "--max-seq-len", "64", "--lr", "1e-4", "--val-ratio", "0", "--save-steps", "1", "--max-steps", "6", "--seed", "1"));
            Process p = startChild(args, tmp.resolve("run-" + delayMs + ".log"));
            String mark = ".tune4j-tmp-" + p.pid() + "-";
            // a later checkpoint's write: an earlier one is complete, so the run can resume from it
            boolean seen = waitFor(p, () -> names(ckpts).stream().anyMatch(n -> n.contains(mark)) && names(ckpts).stream().anyMatch(n -> n.matches("step-\\d+")));
            assertThat(seen).as("a checkpoint write was seen: " + Files.readString(tmp.resolve("run-" + delayMs + ".log"))).isTrue();
            Thread.sleep(delayMs);
            p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            if (names(ckpts).stream().anyMatch(n -> n.contains(mark))) midWrite++;

            for (String n : names(ckpts)) if (n.matches("step-\\d+"))
                assertThat(Checkpoints.problem(ckpts.resolve(n))).as("every checkpoint under its final name is complete: " + n).isNull();
            args.add("--resume");
            var r = CliRun.of(args.toArray(String[]::new));
            assertThat(r.code()).as(r.err() + r.out()).isZero();
            assertThat(names(ckpts)).as("no staging left after the resumed run").allMatch(n -> n.matches("step-\\d+"));
            if (midWrite >= 2) break;
        }
        assertThat(midWrite).as("kills that landed while a checkpoint was being written").isPositive();
    }

    static void run(String... args) {
        var r = CliRun.of(args);
        assertThat(r.code()).as(String.join(" ", args) + "\n" + r.err() + r.out()).isZero();
    }

    static List<String> names(Path dir) {
        if (!Files.isDirectory(dir)) return List.of();
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        } catch (java.io.IOException e) {
            return List.of(); // a name renamed away while listing: look again next poll
        }
    }

    /** Polls every millisecond until the condition holds (true) or the process ends or 120 s pass (false). */
    static boolean waitFor(Process p, java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline && p.isAlive()) {
            if (condition.getAsBoolean()) return true;
            Thread.sleep(1);
        }
        return false;
    }

    static Process startChild(List<String> args, Path logFile) throws Exception {
        var cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(args);
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(logFile.toFile()).start();
    }
}
