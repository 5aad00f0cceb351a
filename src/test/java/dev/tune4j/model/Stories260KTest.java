package dev.tune4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

/** The real pretrained stories260K (HF copy in golden/): greedy story, logits and mean loss on the TinyStories sample. */
class Stories260KTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void greedyStoryFromBos() throws Exception {
        JsonNode g = JSON.readTree(Golden.golden("stories260K/generate.json").toFile());
        long[] want = Golden.longs(g.get("generated_ids"));
        try (ModelFolder f = ModelFolder.open(Golden.golden("stories260K/hf")); LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
            var r = Generator.generate(m, new long[]{1}, GenerationConfig.greedy(want.length), null, null);
            assertThat(r.tokens()).containsExactly(want);
        }
    }

    @Test
    void lossAndLogitsOnTinyStoriesSample() throws Exception {
        JsonNode g = JSON.readTree(Golden.golden("stories260K/loss.json").toFile());
        long[] ids = Golden.longs(g.get("token_ids"));
        try (ModelFolder f = ModelFolder.open(Golden.golden("stories260K/hf"));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors t = Safetensors.open(Golden.golden("stories260K/tokens.safetensors"));
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            double total = 0;
            long count = 0;
            for (int start = 0; start < ids.length; start += 512) {
                long[] chunk = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + 512));
                var ids2 = Tensors.longs(chunk, 1, chunk.length);
                var sum = CausalLmLoss.sum(m.logits(ids2, null, null), ids2);
                total += sum.total();
                count += sum.count();
            }
            assertThat(count).isEqualTo(g.get("num_predicted_tokens").asLong());
            assertThat(total / count).isCloseTo(g.get("mean_loss").asDouble(), offset(1e-5));
            long[] first = Arrays.copyOf(ids, 64);
            assertClose("logits_first64", Tensors.toFloats(m.logits(Tensors.longs(first, 1, 64), null, null)), t.floats("logits_first64"), 1e-4);
        }
    }
}
