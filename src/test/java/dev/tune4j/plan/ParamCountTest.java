package dev.tune4j.plan;

import dev.tune4j.Golden;
import dev.tune4j.hf.ModelFolder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** Parameter and LoRA counts equal the published numbers (../shared/reference §3.2, §3.3) and real checkpoints' tensors. */
class ParamCountTest {
    @ParameterizedTest
    @CsvSource({
            "qwen2.5-0.5b, 494032768, 357898112", "qwen2.5-1.5b, 1543714304, 1310340608", "qwen2.5-3b, 3085938688, 2774773760",
            "qwen2.5-7b, 7615616512, 6525621760", "smollm2-135m, 134515008, 106203456", "smollm2-360m, 361821120, 314635200",
            "smollm2-1.7b, 1711376384, 1610713088", "llama-3.2-1b, 1235814400, 973146112", "llama-3.2-3b, 3212749824, 2818747392",
            "llama-3.1-8b, 8030261248, 6979588096", "llama-2-7b, 6738415616, 6476271616", "llama-2-13b, 13015864320, 12688184320",
            "llama-2-70b, 68976648192, 68452360192", "mistral-7b, 7241732096, 6979588096"})
    void catalogTotalsArePublishedCounts(String model, long total, long nonEmbedding) {
        var c = Catalog.get(model);
        assertThat(ParamCount.total(c)).isEqualTo(total);
        assertThat(ParamCount.nonEmbedding(c)).isEqualTo(nonEmbedding);
        assertThat(ParamCount.total(c)).as("the same count the model's tensor list gives")
                .isEqualTo(c.expectedTensors().values().stream().mapToLong(s -> s.length == 1 ? s[0] : s[0] * s[1]).sum());
    }

    @ParameterizedTest
    @CsvSource({"qwen2.5-0.5b, 540672, 8798208, 8650752", "smollm2-135m, 460800, 4884480, 7372800", "llama-2-7b, 4194304, 39976960, 67108864",
            "llama-3.1-8b, 3407872, 41943040, 54525952", "llama-2-70b, 16384000, 207093760, 262144000", "mistral-7b, 3407872, 41943040, 54525952"})
    void loraCountsArePublished(String model, long qvR8, long allR16, long qkvoR64) {
        var c = Catalog.get(model);
        assertThat(ParamCount.lora(c, 8, List.of("q_proj", "v_proj"))).isEqualTo(qvR8);
        assertThat(ParamCount.lora(c, 16, List.of("all-linear"))).isEqualTo(allR16);
        assertThat(ParamCount.lora(c, 64, List.of("q_proj", "k_proj", "v_proj", "o_proj"))).isEqualTo(qkvoR64);
    }

    @Test
    void squareMatrixAtRank8() {
        var c = Catalog.get("llama-2-7b"); // q_proj is 4096 × 4096
        assertThat(ParamCount.lora(c, 8, List.of("q_proj")) / c.numLayers()).isEqualTo(65_536);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-untied", "llama-tied", "qwen2-untied", "mistral"})
    void agreesWithRealCheckpoints(String name) {
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/" + name))) {
            long tensors = f.names().stream().filter(n -> !(f.config().tieWordEmbeddings() && n.equals("lm_head.weight"))).mapToLong(n -> f.info(n).numel()).sum();
            assertThat(ParamCount.total(f.config())).isEqualTo(tensors);
        }
    }

    @Test
    void planCommandReportsCountsForFoldersAndCatalogNames() throws Exception {
        var r = dev.tune4j.CliRun.of("plan", "--model", "smollm2-135m", "--method", "lora", "--r", "16", "--json");
        assertThat(r.code()).as(r.err()).isZero();
        var j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(r.out());
        assertThat(j.at("/model/total").asLong()).isEqualTo(134_515_008L);
        assertThat(j.at("/method/trainable").asLong()).isEqualTo(4_884_480L);
        var folder = dev.tune4j.CliRun.of("plan", "--model", Golden.golden("models/qwen2-tied").toString(), "--method", "full");
        assertThat(folder.code()).as(folder.err()).isZero();
        assertThat(folder.out()).contains("Qwen2ForCausalLM").contains("full trainable");
        var bad = dev.tune4j.CliRun.of("plan", "--model", "gpt-5");
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("unknown model 'gpt-5'").contains("llama-2-7b");
    }
}
