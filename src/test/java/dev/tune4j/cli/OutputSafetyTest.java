package dev.tune4j.cli;

import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.util.*;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every writing command through the CLI: an existing output is never replaced without --overwrite, an output that
 * overlaps an input is refused even with it, file-vs-folder and unwritable destinations are named before any work,
 * and staging copies of dead processes are cleaned up. Refusals exit 2, name the path, and change no byte on disk.
 * Inputs are copies of the golden models in the test's folder, so a failing check can never touch ../shared.
 */
class OutputSafetyTest {
    @TempDir
    Path tmp;

    Path qwen, adapter, mistral, llama2c, tok;

    @BeforeEach
    void copyInputs() throws IOException {
        qwen = copy(Golden.golden("models/qwen2-untied"), tmp.resolve("in/qwen"));
        adapter = copy(Golden.golden("lora/qwen2-untied/adapter"), tmp.resolve("in/adapter"));
        mistral = copy(Golden.golden("models/mistral"), tmp.resolve("in/mistral"));
        llama2c = Files.copy(Golden.asset("stories260K/stories260K.bin"), tmp.resolve("in/stories260K.bin"));
        tok = Files.copy(Golden.asset("stories260K/tok512.bin"), tmp.resolve("in/tok512.bin"));
    }

    static Path copy(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(t);
                else Files.copy(p, t);
            }
        }
        return to;
    }

    /** Every file under root (links not followed) → its SHA-256; folders as entries too, so an added empty one shows. */
    static Map<String, String> tree(Path root) throws Exception {
        var m = new TreeMap<String, String>();
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.toList()) {
                String rel = root.relativize(p).toString();
                if (Files.isSymbolicLink(p)) m.put(rel, "link → " + Files.readSymbolicLink(p));
                else if (Files.isDirectory(p)) m.put(rel + "/", "dir");
                else m.put(rel, HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
            }
        }
        return m;
    }

    /** The command exits 2 naming {@code named}, prints no stack trace, and leaves every byte under tmp as it was. */
    void refused(String named, String... args) throws Exception {
        var before = tree(tmp);
        CliRun r = CliRun.of(args);
        assertThat(r.code()).as(String.join(" ", args) + "\n" + r.err() + r.out()).isEqualTo(2);
        assertThat(r.err()).contains(named).doesNotContain("\tat ");
        assertThat(tree(tmp)).as("files after a refused " + args[0]).isEqualTo(before);
    }

    String[] merge(Path out, String... more) {
        var a = new ArrayList<>(List.of("merge", "--model", qwen.toString(), "--adapter", adapter.toString(), "--out", out.toString()));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    String[] quantize(Path model, Path out, String... more) {
        var a = new ArrayList<>(List.of("quantize", "--model", model.toString(), "--out", out.toString()));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    String[] convert(Path out, String... more) {
        var a = new ArrayList<>(List.of("convert", "llama2c", "--model", llama2c.toString(), "--tokenizer", tok.toString(), "--out", out.toString()));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    String[] export(Path out, String... more) {
        var a = new ArrayList<>(List.of("export", "gguf", "--model", mistral.toString(), "--out", out.toString(), "--dtype", "f32"));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    static void noStagingLeft(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.contains("tune4j-"));
        }
    }

    @Test
    void anExistingNonEmptyOutputIsRefusedWithoutOverwrite() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("out/existing"));
        Files.writeString(dir.resolve("keep.txt"), "the user's file");
        Path file = Files.writeString(tmp.resolve("out/existing.gguf"), "not to be replaced");
        refused(dir + ": exists and is not empty", merge(dir));
        refused("--overwrite", quantize(qwen, dir));
        refused(dir.toString(), convert(dir));
        refused(file + ": exists and is not empty", export(file));
        refused(file.toString(), "logits", "--model", qwen.toString(), "--input", "[1, 2]", "--out", file.toString());
        refused("not a demo work folder", "demo", "--out", dir.toString());
    }

    @Test
    void overwriteReplacesTheOutputAndLeavesNoStagingBehind() throws Exception {
        Path parent = Files.createDirectories(tmp.resolve("out"));
        var commands = Map.of("merged", (java.util.function.Function<Path, String[]>) p -> merge(p, "--overwrite"),
                "quantized", p -> quantize(qwen, p, "--overwrite"), "converted", p -> convert(p, "--overwrite"));
        for (var e : commands.entrySet()) {
            Path out = Files.createDirectories(parent.resolve(e.getKey()));
            Files.writeString(out.resolve("keep.txt"), "old");
            CliRun r = CliRun.of(e.getValue().apply(out));
            assertThat(r.code()).as(e.getKey() + ": " + r.err()).isZero();
            assertThat(out.resolve("config.json")).exists();
            assertThat(out.resolve("keep.txt")).as("the old content is gone").doesNotExist();
        }
        Path gguf = Files.writeString(parent.resolve("m.gguf"), "old");
        CliRun r = CliRun.of(export(gguf, "--overwrite"));
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(Files.size(gguf)).isGreaterThan(1000);
        noStagingLeft(parent);
        noStagingLeft(tmp.resolve("in"));
    }

    @Test
    void anOutputOverlappingAnInputIsRefusedEvenWithOverwrite() throws Exception {
        // quantize --model X/m --out X once deleted the source model; merge --model X --out X replaced the base
        refused("the output contains the input", quantize(qwen, qwen.getParent(), "--overwrite"));
        refused("the output is the input", quantize(qwen, qwen, "--overwrite"));
        refused("the output is inside the input", quantize(qwen, qwen.resolve("q4"), "--overwrite"));
        refused("the output is the input", merge(qwen, "--overwrite"));
        refused("the output is the input " + adapter, merge(adapter, "--overwrite"));
        refused("the output is inside the input", export(mistral.resolve("model.gguf"), "--overwrite"));
        refused("the output contains the input", convert(tmp.resolve("in"), "--overwrite"));
        // through symbolic links: an existing link to the input, and a new path under it
        Path link = Files.createSymbolicLink(tmp.resolve("link"), qwen);
        refused("the output is the input", quantize(qwen, link, "--overwrite"));
        refused("the output is inside the input", quantize(qwen, link.resolve("new/q4"), "--overwrite"));
        Path linkToParent = Files.createSymbolicLink(tmp.resolve("inlink"), tmp.resolve("in"));
        refused("the output contains the input", merge(linkToParent, "--overwrite"));
        assertThat(qwen.resolve("model.safetensors")).exists();
    }

    @Test
    void aFileWhereAFolderIsExpectedAndTheReverseAreNamed() throws Exception {
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        Path dir = Files.createDirectories(tmp.resolve("a-dir"));
        refused(file + ": is a file, expected a folder", quantize(qwen, file, "--overwrite"));
        refused(file + ": is a file, expected a folder", merge(file, "--overwrite"));
        refused(dir + ": is a folder, expected a file", export(dir, "--overwrite"));
        refused("is a file, not a folder", convert(file.resolve("sub")));
        refused("is a file, not a folder", export(file.resolve("m.gguf")));
    }

    @Test
    void anUnwritableDestinationIsNamedBeforeAnyWork() throws Exception {
        // /proc refuses new files even to root: the probe fails the same way a read-only mount would
        CliRun r = CliRun.of(quantize(qwen, Path.of("/proc/tune4j-test/q4")));
        assertThat(r.code()).as(r.err()).isEqualTo(2);
        assertThat(r.err()).contains("/proc/tune4j-test/q4: cannot write in /proc").contains("nothing was written").doesNotContain("\tat ");

        Path ro = Files.createDirectories(tmp.resolve("read-only"));
        Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("r-xr-xr-x"));
        try {
            boolean rootIgnoresModes;
            try {
                Files.delete(Files.createFile(ro.resolve("probe")));
                rootIgnoresModes = true;
            } catch (java.nio.file.AccessDeniedException e) {
                rootIgnoresModes = false;
            }
            if (rootIgnoresModes) {
                System.err.println("SKIPPED one assertion: this test runs as root, for whom a read-only folder mode does not block writes "
                        + "(the /proc case above checks the same refusal)");
            } else {
                refused(ro + "/q4: cannot write in " + ro, quantize(qwen, ro.resolve("q4")));
                refused("cannot write in " + ro, export(ro.resolve("m.gguf")));
            }
        } finally {
            Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
    }

    @Test
    void stagingLeftByADeadProcessIsRemovedAndALiveOnesIsKept() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        long dead = p.pid(), live = ProcessHandle.current().pid();
        assertThat(ProcessHandle.of(dead)).isEmpty();
        Path parent = Files.createDirectories(tmp.resolve("out"));
        Path deadStage = Files.createDirectories(parent.resolve(".q4.tune4j-tmp-" + dead + "-0"));
        Files.writeString(deadStage.resolve("model.safetensors"), "half-written");
        Path deadFile = Files.writeString(parent.resolve(".config.json.tune4j-tmp-" + dead + "-7"), "{\"half");
        Path nested = Files.createDirectories(parent.resolve("..m.tune4j-tmp-" + dead + "-1.merging-123"));
        Path liveStage = Files.createDirectories(parent.resolve(".q4.tune4j-tmp-" + live + "-99"));
        // a folder moved aside for replacement whose process died before the new one took its name: moved back
        Path movedAside = Files.createDirectories(parent.resolve(".run.tune4j-old-" + dead + "-2"));
        Files.writeString(movedAside.resolve("adapter_config.json"), "{}");
        Path notOurs = Files.createDirectories(parent.resolve(".cache"));

        CliRun r = CliRun.of(quantize(qwen, parent.resolve("q4")));
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(deadStage).doesNotExist();
        assertThat(deadFile).doesNotExist();
        assertThat(nested).doesNotExist();
        assertThat(liveStage).exists();
        assertThat(movedAside).doesNotExist();
        assertThat(parent.resolve("run/adapter_config.json")).hasContent("{}");
        assertThat(notOurs).exists();
        assertThat(parent.resolve("q4/config.json")).exists();
    }

    @Test
    void reportNamesABrokenMetricsLineAndAFolderInPlaceOfTheReport() throws Exception {
        Path run = Files.createDirectories(tmp.resolve("run"));
        Files.writeString(run.resolve("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0, \"lr\": 0.1}\n{\"step\": 2, \"loss\": 1.9, \"lr\": 0.1}\n{\"step\": 3, \"lo");
        refused(run.resolve("metrics.jsonl") + ": line 3: not valid JSON", "report", run.toString());
        Files.writeString(run.resolve("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0} {\"step\": 2}\n");
        refused("line 1", "report", run.toString());
        Files.writeString(run.resolve("metrics.jsonl"), "{\"step\": 1, \"loss\": 2.0, \"lr\": 0.1}\n");
        CliRun ok = CliRun.of("report", run.toString());
        assertThat(ok.code()).as(ok.err()).isZero();
        Files.delete(run.resolve("report.html"));
        Files.createDirectories(run.resolve("report.html"));
        refused("report.html: is a folder, expected a file", "report", run.toString());
    }
}
