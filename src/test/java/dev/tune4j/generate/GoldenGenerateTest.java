package dev.tune4j.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;

import static org.assertj.core.api.Assertions.assertThat;

/** Greedy generation with the KV cache equals transformers' generate() token for token. */
class GoldenGenerateTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama-untied", "llama-tied", "qwen2-untied", "qwen2-tied", "mistral"})
    void greedyEqualsTransformers(String name) throws Exception {
        JsonNode g = new ObjectMapper().readTree(Golden.golden("cases/" + name + "/generate.json").toFile());
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/" + name)); LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
            JsonNode cases = g.has("cases") ? g.get("cases") : g.get("prompts");
            assertThat(cases).as("generate.json cases").isNotNull();
            for (JsonNode c : cases) {
                long[] prompt = Golden.longs(c.get("prompt_ids"));
                long[] want = Golden.longs(c.get("generated_ids"));
                var streamed = new ArrayList<Integer>();
                var r = Generator.generate(m, prompt, GenerationConfig.greedy(want.length), null, streamed::add);
                assertThat(r.tokens()).as(name + " prompt of " + prompt.length).containsExactly(want);
                assertThat(streamed).hasSize(want.length);
                assertThat(r.reason()).isEqualTo(Generator.StopReason.MAX_TOKENS);
            }
        }
    }
}
