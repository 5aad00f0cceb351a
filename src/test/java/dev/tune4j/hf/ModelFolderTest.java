package dev.tune4j.hf;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.*;

/** config.json parsing per architecture, and named errors for unknown architectures and missing/unexpected/mis-shaped tensors. */
class ModelFolderTest {
    @TempDir
    Path dir;

    static final ObjectMapper JSON = new ObjectMapper();

    /** Writes a folder for {@code c} with zero weights; {@code edit} may change the tensor map first. */
    static void writeFolder(Path dir, ModelConfig c, java.util.function.Consumer<Map<String, TensorBlob>> edit) throws Exception {
        var t = new LinkedHashMap<String, TensorBlob>();
        c.expectedTensors().forEach((n, s) -> {
            long k = 1;
            for (long d : s) k *= d;
            t.put(n, TensorBlob.ofFloats(new float[(int) k], s));
        });
        edit.accept(t);
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(c.toJson()));
        SafetensorsWriter.write(dir.resolve("model.safetensors"), t, SafetensorsWriter.PT_METADATA);
    }

    @Test
    void parsesEachArchitectureWithTransformersDefaults() throws Exception {
        var qwen = ModelConfig.parse(JSON.readTree("{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                + "\"intermediate_size\":128,\"num_hidden_layers\":2,\"vocab_size\":256,\"eos_token_id\":[1,2],\"use_sliding_window\":false,\"sliding_window\":32}"));
        assertThat(qwen.attentionBias()).isTrue();
        assertThat(qwen.outputBias()).isFalse();
        assertThat(qwen.ropeTheta()).isEqualTo(1e6);
        assertThat(qwen.eosTokenIds()).containsExactly(1, 2);
        assertThat(qwen.slidingWindow()).isZero();
        assertThat(qwen.expectedTensors()).containsKey("model.layers.1.self_attn.k_proj.bias").containsKey("lm_head.weight");

        var mistral = ModelConfig.parse(JSON.readTree("{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":64,\"num_attention_heads\":4,\"sliding_window\":4096}"));
        assertThat(mistral.slidingWindow()).isEqualTo(4096);
        assertThat(mistral.numKvHeads()).isEqualTo(4);
        assertThat(mistral.headDim()).isEqualTo(16);

        var llama31 = ModelConfig.parse(JSON.readTree("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_attention_heads\":4,\"head_dim\":32,"
                + "\"tie_word_embeddings\":true,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}"));
        assertThat(llama31.ropeScaling().type()).isEqualTo("llama3");
        assertThat(llama31.ropeScaling().factor()).isEqualTo(8.0);
        assertThat(llama31.headDim()).isEqualTo(32);
        assertThat(llama31.expectedTensors()).doesNotContainKey("lm_head.weight").containsEntry("model.layers.0.self_attn.q_proj.weight", new long[]{128, 64});

        var linear = ModelConfig.parse(JSON.readTree("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_attention_heads\":4,\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}"));
        assertThat(linear.ropeScaling().type()).isEqualTo("linear");
    }

    @Test
    void configRoundTripsThroughToJson() throws Exception {
        for (ModelConfig c : ConfigPresets.BY_NAME.values().stream().map(java.util.function.Supplier::get).toList())
            assertThat(ModelConfig.parse(JSON.valueToTree(c.toJson()))).isEqualTo(c);
    }

    @Test
    void unknownArchitectureIsNamed() throws Exception {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":64,\"num_attention_heads\":4}");
        assertThatThrownBy(() -> ModelFolder.open(dir)).isInstanceOf(HfFormatException.class)
                .hasMessageContaining("config.json").hasMessageContaining("GPT2LMHeadModel").hasMessageContaining("LlamaForCausalLM");
    }

    @Test
    void badConfigValuesAreNamed() throws Exception {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":\"big\",\"num_attention_heads\":4}");
        assertThatThrownBy(() -> ModelFolder.open(dir)).hasMessageContaining("hidden_size");
        Files.writeString(dir.resolve("config.json"), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_attention_heads\":4,\"num_key_value_heads\":3}");
        assertThatThrownBy(() -> ModelFolder.open(dir)).hasMessageContaining("num_key_value_heads");
        Files.writeString(dir.resolve("config.json"), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_attention_heads\":4,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}");
        assertThatThrownBy(() -> ModelFolder.open(dir)).hasMessageContaining("yarn");
    }

    @Test
    void missingTensorIsNamed() throws Exception {
        writeFolder(dir, ConfigPresets.tiny(), t -> t.remove("model.layers.2.mlp.up_proj.weight"));
        try (ModelFolder f = ModelFolder.open(dir)) {
            assertThatThrownBy(f::validate).hasMessageContaining("missing tensor 'model.layers.2.mlp.up_proj.weight'").hasMessageContaining("[344, 128]");
        }
    }

    @Test
    void unexpectedTensorIsNamed() throws Exception {
        writeFolder(dir, ConfigPresets.tiny(), t -> t.put("model.layers.9.mlp.up_proj.weight", TensorBlob.ofFloats(new float[1], 1)));
        try (ModelFolder f = ModelFolder.open(dir)) {
            assertThatThrownBy(f::validate).hasMessageContaining("unexpected tensor 'model.layers.9.mlp.up_proj.weight'");
        }
    }

    @Test
    void misShapedTensorIsNamed() throws Exception {
        writeFolder(dir, ConfigPresets.tiny(), t -> t.put("model.norm.weight", TensorBlob.ofFloats(new float[64], 64)));
        try (ModelFolder f = ModelFolder.open(dir)) {
            assertThatThrownBy(f::validate).hasMessageContaining("'model.norm.weight'").hasMessageContaining("expected shape [128]").hasMessageContaining("found [64]");
        }
    }

    @Test
    void shardIndexNamingAMissingFileIsNamed() throws Exception {
        writeFolder(dir, ConfigPresets.tiny(), t -> {});
        Files.delete(dir.resolve("model.safetensors"));
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002.safetensors\"}}");
        assertThatThrownBy(() -> ModelFolder.open(dir)).hasMessageContaining("model-00001-of-00002.safetensors");
    }
}
