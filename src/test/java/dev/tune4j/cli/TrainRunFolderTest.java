package dev.tune4j.cli;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.stream.Stream;

import static dev.tune4j.cli.OutputSafetyTest.tree;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * train's run folder: an existing run is refused without --resume or --overwrite, --overwrite leaves nothing of the old
 * run for a later --resume, --resume alone means latest, an incomplete latest checkpoint is set aside with a warning,
 * and resuming past --max-steps is named; bad data exits 2 and leaves no run folder behind.
 */
class TrainRunFolderTest {
    @TempDir
    Path tmp;

    static Path model;

    @BeforeAll
    static void setup() throws Exception {
        model = EmbeddedModel.stories260k();
    }

    Path data() throws Exception {
        var sb = new StringBuilder();
        String[] names = {"Lily", "Tom", "Ben", "Sue"}, colours = {"red", "blue", "green", "pink"};
        for (int i = 0; i < 32; i++)
            sb.append("{\"instruction\": \"What colour does ").append(names[i % 4]).append(" like?\", \"output\": \"").append(colours[i % 4]).append("\"}\n");
        return Files.writeString(tmp.resolve("task.jsonl"), sb.toString());
    }

    List<String> train(Path data, Path out, String... more) {
        var a = new ArrayList<>(List.of("train", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(),
                "--r", "4", "--batch-size", "8", "--max-seq-len", "48", "--val-ratio", "0", "--save-steps", "2", "--keep-last", "3"));
        a.addAll(List.of(more));
        return a;
    }

    static CliRun cli(List<String> args) {
        return CliRun.of(args.toArray(String[]::new));
    }

    static List<String> checkpoints(Path out) throws Exception {
        try (Stream<Path> s = Files.list(out.resolve("checkpoints"))) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void validationEvaluatesAtMostMaxEvalSamplesExamples() throws Exception {
        Path data = data();
        CliRun capped = cli(train(data, tmp.resolve("capped"), "--max-steps", "1", "--val-ratio", "0.5", "--max-eval-samples", "3", "--save-steps", "0"));
        assertThat(capped.code()).as(capped.err()).isZero();
        assertThat(capped.out()).contains("validation: the first 3 of 16 held-out examples (--max-eval-samples; 0 evaluates all)");
        CliRun all = cli(train(data, tmp.resolve("all"), "--max-steps", "1", "--val-ratio", "0.5", "--max-eval-samples", "0", "--save-steps", "0"));
        assertThat(all.code()).as(all.err()).isZero();
        assertThat(all.out()).doesNotContain("held-out examples (--max-eval-samples");
        // by default a 1-step run of batch 4 (it trains on 4 examples) validates on the floor of 8
        CliRun short4 = cli(train(data, tmp.resolve("default"), "--max-steps", "1", "--val-ratio", "0.5", "--batch-size", "4", "--save-steps", "0"));
        assertThat(short4.code()).as(short4.err()).isZero();
        assertThat(short4.out()).contains("validation: the first 8 of 16 held-out examples (--max-eval-samples: 64, but no more than half of what this run trains on, at least 8; 0 evaluates all)");
        // the capped validation is a different (smaller) set: its loss differs from the whole split's
        assertThat(capped.out().replaceAll("(?s).*validation before training: loss ([0-9.]+).*", "$1"))
                .isNotEqualTo(all.out().replaceAll("(?s).*validation before training: loss ([0-9.]+).*", "$1"));
    }

    @Test
    void anExistingRunNeedsResumeOrOverwriteAndOverwriteForgetsTheOldRun() throws Exception {
        Path data = data(), out = tmp.resolve("run");
        CliRun first = cli(train(data, out, "--max-steps", "4"));
        assertThat(first.code()).as(first.err() + first.out()).isZero();
        assertThat(checkpoints(out)).containsExactly("step-2", "step-4");

        var before = tree(tmp);
        CliRun again = cli(train(data, out, "--max-steps", "4"));
        assertThat(again.code()).isEqualTo(2);
        assertThat(again.err()).contains(out + ": exists and is not empty").contains("--resume").contains("--overwrite").doesNotContain("\tat ");
        assertThat(tree(tmp)).isEqualTo(before);

        // data inside the run folder, and the run folder inside the model: refused even with --overwrite
        Path inside = Files.copy(data, out.resolve("task.jsonl"));
        before = tree(tmp);
        CliRun contains = cli(train(inside, out, "--max-steps", "2", "--overwrite"));
        assertThat(contains.code()).isEqualTo(2);
        assertThat(contains.err()).contains("the output contains the input " + inside);
        CliRun inModel = cli(train(data, model.resolve("run"), "--max-steps", "2", "--overwrite"));
        assertThat(inModel.code()).isEqualTo(2);
        assertThat(inModel.err()).contains("the output is inside the input " + model);
        assertThat(tree(tmp)).isEqualTo(before);
        assertThat(model.resolve("run")).doesNotExist();
        Files.delete(inside);

        CliRun both = cli(train(data, out, "--max-steps", "6", "--overwrite", "--resume"));
        assertThat(both.code()).isEqualTo(2);
        assertThat(both.err()).contains("--overwrite would delete the checkpoint");

        CliRun over = cli(train(data, out, "--max-steps", "2", "--overwrite"));
        assertThat(over.code()).as(over.err() + over.out()).isZero();
        assertThat(checkpoints(out)).as("nothing of the old run is left for --resume latest").containsExactly("step-2");
        assertThat(Files.readAllLines(out.resolve("metrics.jsonl"))).hasSize(2);
        try (Stream<Path> s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.contains("tune4j-"));
        }
    }

    @Test
    void resumeAloneMeansLatestAndAnIncompleteLatestCheckpointIsSetAside() throws Exception {
        Path data = data(), out = tmp.resolve("run");
        assertThat(cli(train(data, out, "--max-steps", "4")).code()).isZero();

        CliRun done = cli(train(data, out, "--max-steps", "4", "--resume"));
        assertThat(done.code()).isEqualTo(2);
        assertThat(done.err()).contains("is at step 4 and --max-steps is 4: nothing left to train").doesNotContain("NaN");

        // a checkpoint cut short (a full disk, a copy interrupted): its tensors file loses its tail
        Path cut = out.resolve("checkpoints/step-4/trainable.safetensors");
        byte[] b = Files.readAllBytes(cut);
        Files.write(cut, Arrays.copyOf(b, b.length - 100));
        // and metrics.jsonl ends in a cut line
        Files.writeString(out.resolve("metrics.jsonl"), "{\"step\": 5, \"lo", StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
        CliRun r = cli(train(data, out, "--max-steps", "6", "--resume"));
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).contains("warning: checkpoint " + out.resolve("checkpoints/step-4") + " is incomplete")
                .contains("trainable.safetensors").contains("renamed to step-4.broken")
                .contains("resumed from " + out.resolve("checkpoints/step-2") + " at step 2")
                .contains("ended in a cut line");
        assertThat(checkpoints(out)).contains("step-4.broken", "step-6");
        CliRun report = CliRun.of("report", out.toString());
        assertThat(report.code()).as(report.err()).isZero();

        // an explicit checkpoint that is not one is named
        CliRun bad = cli(train(data, out, "--max-steps", "8", "--resume", out.resolve("checkpoints/step-4.broken").toString()));
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("not a complete checkpoint").contains("trainable.safetensors");
    }

    @Test
    void badDataExitsTwoNamingFileAndLineAndLeavesNoRunFolder() throws Exception {
        Path data = Files.writeString(tmp.resolve("bad.jsonl"), "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\", \"output\": \"d\"} {\"x\": 1}\n");
        Path out = tmp.resolve("run");
        var before = tree(tmp);
        CliRun r = cli(train(data, out, "--max-steps", "2"));
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains(data + " line 2: extra data after the JSON value, at column 37").doesNotContain("\tat ");
        assertThat(tree(tmp)).isEqualTo(before);
        assertThat(out).doesNotExist();

        CliRun dev = cli(train(Path.of("/dev/zero"), out, "--max-steps", "2"));
        assertThat(dev.code()).isEqualTo(2);
        assertThat(dev.err()).contains("/dev/zero: not a regular file");
        assertThat(out).doesNotExist();
    }
}
