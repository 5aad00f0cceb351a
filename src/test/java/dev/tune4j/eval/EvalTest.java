package dev.tune4j.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.tensor.Compute;
import org.bytedeco.pytorch.Scalar;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** eval on the embedded stories260K: loss and generation scores, JSON output, and the forgetting flag. */
class EvalTest {
    @TempDir
    Path tmp;

    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void generationScoresCompareAnswersWithExpectedText() throws Exception {
        Path model = EmbeddedModel.stories260k();
        // the model's own greedy continuation is the "expected" answer for one record, a wrong one for the other
        Path data = tmp.resolve("p.jsonl");
        Files.writeString(data, "{\"prompt\": \"Once upon a time\", \"completion\": \", there was a little girl named Lily.\"}\n"
                + "{\"prompt\": \"Once upon a time\", \"completion\": \"The rocket flew to Mars.\"}\n");
        CliRun r = CliRun.of("eval", "--model", model.toString(), "--data", data.toString(), "--prompt-style", "alpaca", "--generate",
                "--max-new-tokens", "12", "--regex", "Lily", "--json");
        assertThat(r.code()).as(r.err()).isZero();
        var j = JSON.readTree(r.out().strip().lines().reduce((a, b) -> b).orElseThrow());
        assertThat(j.get("n").asInt()).isEqualTo(2);
        assertThat(j.get("loss").asDouble()).isPositive();
        assertThat(j.get("perplexity").asDouble()).isCloseTo(Math.exp(j.get("loss").asDouble()), org.assertj.core.data.Offset.offset(1e-9));
        assertThat(j.get("samples")).hasSize(2);
        assertThat(j.get("regex").asDouble()).isBetween(0.0, 1.0);
        assertThat(j.get("exact_match").asDouble()).isLessThanOrEqualTo(j.get("contains").asDouble());
    }

    @Test
    void forgettingIsFlaggedForAHarmfulAdapter() throws Exception {
        Path model = EmbeddedModel.stories260k();
        Path harmful = tmp.resolve("harmful");
        try (ModelFolder f = ModelFolder.open(model); LlamaModel m = LlamaModel.load(f, Compute.cpu());
             LoraAdapter a = LoraAdapter.create(m, new LoraConfig(4, 8, 0, List.of("all-linear"), false), 1, model.toString())) {
            for (var l : a.modules().values()) l.lora_B.detach().fill_(new Scalar(2.0)); // a large random-direction update
            a.save(harmful);
        }
        Path general = tmp.resolve("general.txt");
        Files.writeString(general, "Once upon a time, there was a little girl named Lily. She loved to play outside.\n\nTom had a red ball. He played in the park.\n");
        CliRun r = CliRun.of("eval", "--model", model.toString(), "--adapter", harmful.toString(), "--forgetting", "--general", general.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("FORGETTING");
        // a full fine-tune compared as a second model folder: the same model scores an increase of exactly 0
        CliRun same = CliRun.of("eval", "--model", model.toString(), "--tuned-model", model.toString(), "--forgetting", "--general", general.toString(), "--json");
        assertThat(same.code()).as(same.err()).isZero();
        var fj = JSON.readTree(same.out().strip().lines().reduce((a, b) -> b).orElseThrow()).get("forgetting");
        assertThat(fj.get("relative_increase").asDouble()).isEqualTo(0.0);
        assertThat(fj.get("flagged").asBoolean()).isFalse();
        CliRun missing = CliRun.of("eval", "--model", model.toString(), "--forgetting");
        assertThat(missing.code()).isEqualTo(2);
        assertThat(missing.err()).contains("--general");
    }
}
