package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

/** eval --preference on golden/dpo's pairs, pre-tokenized with TRL's column names, on a model folder without a tokenizer. */
class EvalPreferenceTest {
    @TempDir
    Path tmp;

    @Test
    void preferenceLossAndMetricsEqualTrlOnPreTokenizedPairs() throws Exception {
        var mapper = new ObjectMapper();
        JsonNode dpo = mapper.readTree(Golden.golden("dpo/llama-untied/dpo.json").toFile());
        var sb = new StringBuilder();
        for (JsonNode p : dpo.get("pairs")) sb.append(mapper.writeValueAsString(p)).append('\n'); // prompt_ids, chosen_ids, rejected_ids
        Path pairs = tmp.resolve("pairs.jsonl");
        Files.writeString(pairs, sb.toString());
        String model = Golden.golden("models/llama-untied").toString(), adapter = Golden.golden("lora/llama-untied/adapter").toString();
        for (String key : new String[]{"sigmoid_beta0.1", "ipo_beta0.1", "robust_beta0.1_ls0.1"}) {
            JsonNode want = dpo.get("losses").get(key);
            CliRun r = CliRun.of("eval", "--model", model, "--adapter", adapter, "--data", pairs.toString(), "--preference", "--json",
                    "--loss-type", want.get("loss_type").asText(), "--beta", want.get("beta").asText(), "--label-smoothing", want.get("label_smoothing").asText());
            assertThat(r.code()).as(r.err()).isZero();
            JsonNode got = mapper.readTree(r.out());
            assertThat(got.get("pairs").asInt()).isEqualTo(3);
            assertThat(got.get("loss").asDouble()).as(key).isCloseTo(want.get("loss").asDouble(), offset(1e-4));
            if (key.startsWith("sigmoid"))
                dpo.get("metrics").get("beta0.1").properties().forEach(e ->
                        assertThat(got.get(e.getKey()).asDouble()).as(e.getKey()).isCloseTo(e.getValue().asDouble(), offset(1e-4)));
        }
        // the reference can be an SFT adapter: with the policy's own adapter as reference, every reward is 0 and the loss log 2
        CliRun same = CliRun.of("eval", "--model", model, "--adapter", adapter, "--ref-adapter", adapter, "--data", pairs.toString(), "--preference", "--json");
        assertThat(same.code()).as(same.err()).isZero();
        assertThat(mapper.readTree(same.out()).get("loss").asDouble()).isCloseTo(Math.log(2), offset(1e-6));
        // a fully fine-tuned model against its base: the golden merged model (base + adapter folded in) scores as base + adapter
        CliRun merged = CliRun.of("eval", "--model", Golden.golden("lora/llama-untied/merged").toString(), "--ref-model", model, "--data", pairs.toString(), "--preference", "--json");
        assertThat(merged.code()).as(merged.err()).isZero();
        assertThat(mapper.readTree(merged.out()).get("loss").asDouble()).isCloseTo(dpo.get("losses").get("sigmoid_beta0.1").get("loss").asDouble(), offset(1e-4));
        // KTO rows (pre-tokenized, TRL's columns) are scored with KTO's loss: the golden KTO batch in one batch of four
        JsonNode kto = mapper.readTree(Golden.golden("dpo/llama-untied/kto.json").toFile());
        var kb = new StringBuilder();
        for (JsonNode e : kto.get("examples"))
            kb.append(String.format("{\"prompt_ids\": %s, \"completion_ids\": %s, \"label\": %s}%n", e.get("prompt_ids"), e.get("completion_ids"), e.get("label")));
        Path ktoFile = tmp.resolve("kto.jsonl");
        Files.writeString(ktoFile, kb.toString());
        CliRun k = CliRun.of("eval", "--model", model, "--adapter", adapter, "--data", ktoFile.toString(), "--preference", "--batch-size", "4", "--json");
        assertThat(k.code()).as(k.err()).isZero();
        JsonNode kr = mapper.readTree(k.out());
        assertThat(kr.get("loss").asDouble()).isCloseTo(kto.get("loss").asDouble(), offset(1e-4));
        assertThat(kr.get("kl").asDouble()).isCloseTo(kto.get("kl").asDouble(), offset(1e-4));
        // a DPO evaluation without a policy adapter is a named error
        CliRun bad = CliRun.of("eval", "--model", model, "--data", pairs.toString(), "--preference");
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("give --adapter DIR").doesNotContain("Exception");
    }
}
