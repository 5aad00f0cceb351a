package dev.tune4j.peft;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import dev.tune4j.hf.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import org.assertj.core.api.AbstractThrowableAssert;

import static org.assertj.core.api.Assertions.*;

/** Adapters are validated as PEFT validates them: unknown targets, wrong JSON types, non-finite tensors, r too large; layer and rank/alpha patterns honoured. */
class AdapterValidationTest {
    @TempDir
    Path tmp;

    static ModelFolder folder;
    static LlamaModel model;

    @BeforeAll
    static void load() {
        folder = ModelFolder.open(Golden.golden("models/llama-untied"));
        model = LlamaModel.load(folder, Compute.cpu());
    }

    @AfterAll
    static void close() {
        if (model != null) model.close();
        if (folder != null) folder.close();
    }

    /** The golden adapter copied to a temp folder with its adapter_config.json edited. */
    Path adapter(Consumer<ObjectNode> edit) throws IOException {
        Path src = Golden.golden("lora/llama-untied/adapter"), dir = Files.createTempDirectory(tmp, "adapter");
        for (String f : List.of("adapter_model.safetensors", "README.md")) Files.copy(src.resolve(f), dir.resolve(f));
        var om = new ObjectMapper();
        var c = (ObjectNode) om.readTree(src.resolve("adapter_config.json").toFile());
        c.put("base_model_name_or_path", Golden.golden("models/llama-untied").toString());
        edit.accept(c);
        Files.writeString(dir.resolve("adapter_config.json"), om.writeValueAsString(c));
        return dir;
    }

    AbstractThrowableAssert<?, ? extends Throwable> loading(Path dir) {
        return assertThatThrownBy(() -> LoraAdapter.load(dir, model).close()).isInstanceOf(HfFormatException.class)
                .hasMessageContaining("adapter_config.json").hasNoCause();
    }

    @Test
    void goldenCopyLoads() throws IOException {
        try (var a = LoraAdapter.load(adapter(c -> {}), model)) {
            assertThat(a.modules()).hasSize(14);
        }
    }

    @Test
    void targetsThatMatchNothingAreNamed() throws IOException {
        loading(adapter(c -> c.putArray("target_modules").add("q_proj").add("c_attn").add("query_key_value")))
                .hasMessageContaining("[c_attn, query_key_value] not found in the base model");
        loading(adapter(c -> c.put("target_modules", ".*\\.attn\\.c_proj"))).hasMessageContaining("not found in the base model");
        assertThatThrownBy(() -> LoraAdapter.create(model, new LoraConfig(4, 8, 0, List.of("v_proj", "wqkv"), false), 0, "x"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("[wqkv] not found in the base model");
    }

    @Test
    void wrongJsonTypesNameTheKey() throws IOException {
        loading(adapter(c -> c.put("r", "8"))).hasMessageContaining("key 'r': expected an integer, found \"8\" (string)");
        loading(adapter(c -> c.put("r", 8.5))).hasMessageContaining("key 'r': expected an integer");
        loading(adapter(c -> c.putArray("lora_alpha").add(16))).hasMessageContaining("key 'lora_alpha': expected a number, found [16] (array)");
        loading(adapter(c -> c.put("target_modules", 7))).hasMessageContaining("key 'target_modules': expected a string or a list of strings, found 7");
        loading(adapter(c -> c.putArray("target_modules").add("q_proj").add(3))).hasMessageContaining("key 'target_modules'");
        loading(adapter(c -> c.put("use_dora", "false"))).hasMessageContaining("key 'use_dora': expected true or false, found \"false\"");
        loading(adapter(c -> c.put("use_rslora", 0))).hasMessageContaining("key 'use_rslora'");
        loading(adapter(c -> c.put("lora_dropout", "0.1"))).hasMessageContaining("key 'lora_dropout'");
        loading(adapter(c -> c.put("layers_to_transform", "0"))).hasMessageContaining("key 'layers_to_transform': expected an integer or a list of integers");
        loading(adapter(c -> c.putObject("rank_pattern").put("q_proj", "4"))).hasMessageContaining("key 'rank_pattern.q_proj': expected an integer");
        loading(adapter(c -> c.putArray("alpha_pattern"))).hasMessageContaining("key 'alpha_pattern': expected an object");
        loading(adapter(c -> c.put("bias", false))).hasMessageContaining("key 'bias': expected a string");
        loading(adapter(c -> c.putArray("layer_replication").addArray().add(0).add(1))).hasMessageContaining("layer_replication is not supported");
    }

    @Test
    void layersToTransformIsHonoured() throws IOException {
        // the golden tensors cover both layers; a config restricting to layer 0 must not take layer 1's silently
        loading(adapter(c -> c.put("layers_to_transform", 0))).hasMessageContaining("model.layers.1.").hasMessageContaining("layers_to_transform [0]");
        loading(adapter(c -> c.putArray("layers_to_transform").add(5))).hasMessageContaining("leaves no module");
        loading(adapter(c -> { c.putArray("layers_to_transform").add(0); c.put("target_modules", ".*q_proj"); }))
                .hasMessageContaining("layers_to_transform cannot be used when target_modules is a single regex");
        loading(adapter(c -> c.put("layers_pattern", "layers"))).hasMessageContaining("layers_pattern needs layers_to_transform");

        var cfg = new LoraConfig(4, 8, 0, List.of("q_proj", "v_proj"), false, false, List.of(1), List.of("layers"), Map.of(), Map.of());
        Path out = tmp.resolve("layer1");
        try (var a = LoraAdapter.create(model, cfg, 0, "golden")) {
            assertThat(a.modules().keySet()).containsExactly("model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj");
            a.save(out);
        }
        var saved = new ObjectMapper().readTree(out.resolve("adapter_config.json").toFile());
        assertThat(saved.get("layers_to_transform").toString()).isEqualTo("[1]");
        assertThat(saved.get("layers_pattern").asText()).isEqualTo("layers");
        try (var a = LoraAdapter.load(out, model)) {
            assertThat(a.modules().keySet()).containsExactly("model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj");
            assertThat(a.config.layersToTransform()).containsExactly(1);
        }
    }

    @Test
    void rankAndAlphaPatternsAreHonoured() throws IOException {
        try (var a = LoraAdapter.load(adapter(c -> c.putObject("alpha_pattern").put("v_proj", 32)), model)) {
            assertThat(a.modules().get("model.layers.0.self_attn.v_proj").scaling).isEqualTo(4.0);
            assertThat(a.modules().get("model.layers.0.self_attn.q_proj").scaling).isEqualTo(2.0);
        }
        Path ranked = adapter(c -> c.putObject("rank_pattern").put("layers.1.mlp.up_proj", 4));
        assertThatThrownBy(() -> LoraAdapter.load(ranked, model).close()).isInstanceOf(HfFormatException.class)
                .hasMessageContaining("base_model.model.model.layers.1.mlp.up_proj.lora_A.weight': expected shape [4, 64] (r from rank_pattern), found [8, 64]");
        loading(adapter(c -> c.putObject("rank_pattern").put("q_proj(", 4))).hasMessageContaining("'q_proj(' is not a valid pattern");

        var cfg = new LoraConfig(8, 16, 0, List.of("q_proj", "v_proj"), false, false, List.of(), List.of(),
                Map.of("layers.0.self_attn.q_proj", 2), Map.of("v_proj", 4.0));
        assertThat(cfg.r("model.layers.0.self_attn.q_proj")).isEqualTo(2);
        assertThat(cfg.r("model.layers.1.self_attn.q_proj")).isEqualTo(8);
        assertThat(cfg.scaling("model.layers.0.self_attn.q_proj")).isEqualTo(8.0);
        assertThat(cfg.scaling("model.layers.1.self_attn.v_proj")).isEqualTo(0.5);
        Path out = tmp.resolve("patterns");
        try (var a = LoraAdapter.create(model, cfg, 0, "golden")) {
            assertThat(a.modules().get("model.layers.0.self_attn.q_proj").r()).isEqualTo(2);
            a.save(out);
        }
        var saved = new ObjectMapper().readTree(out.resolve("adapter_config.json").toFile());
        assertThat(saved.get("rank_pattern").toString()).isEqualTo("{\"layers.0.self_attn.q_proj\":2}");
        assertThat(saved.get("alpha_pattern").toString()).isEqualTo("{\"v_proj\":4}");
        try (var a = LoraAdapter.load(out, model)) {
            assertThat(a.modules().get("model.layers.0.self_attn.q_proj").r()).isEqualTo(2);
            assertThat(a.modules().get("model.layers.0.self_attn.q_proj").scaling).isEqualTo(8.0);
            assertThat(a.modules().get("model.layers.1.self_attn.v_proj").scaling).isEqualTo(0.5);
        }
    }

    @Test
    void nonFiniteTensorsAreRefusedByName() throws IOException {
        Path dir = adapter(c -> {});
        Path w = dir.resolve("adapter_model.safetensors");
        var blobs = new LinkedHashMap<String, TensorBlob>();
        String bad = "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight";
        try (Safetensors st = Safetensors.open(w)) {
            for (TensorInfo i : st.tensors()) {
                float[] v = st.floats(i.name());
                if (i.name().equals(bad)) v[3] = Float.NaN;
                blobs.put(i.name(), TensorBlob.ofFloats(v, i.shape()));
            }
        }
        SafetensorsWriter.write(w, blobs, SafetensorsWriter.PT_METADATA);
        assertThatThrownBy(() -> LoraAdapter.load(dir, model).close()).isInstanceOf(HfFormatException.class)
                .hasMessageContaining("adapter_model.safetensors").hasMessageContaining(bad).hasMessageContaining("NaN");
    }

    @Test
    void nonFiniteModelWeightsAreRefusedByName() throws IOException {
        Path src = Golden.golden("models/llama-untied"), dir = tmp.resolve("nan-model");
        Files.createDirectories(dir);
        try (var files = Files.list(src)) {
            for (Path f : files.toList()) if (Files.isRegularFile(f) && !f.getFileName().toString().endsWith(".safetensors")) Files.copy(f, dir.resolve(f.getFileName()));
        }
        var blobs = new LinkedHashMap<String, TensorBlob>();
        String bad = "model.layers.0.mlp.up_proj.weight";
        try (Safetensors st = Safetensors.open(src.resolve("model.safetensors"))) {
            for (TensorInfo i : st.tensors()) {
                float[] v = st.floats(i.name());
                if (i.name().equals(bad)) v[7] = Float.POSITIVE_INFINITY;
                blobs.put(i.name(), TensorBlob.ofFloats(v, i.shape()));
            }
        }
        SafetensorsWriter.write(dir.resolve("model.safetensors"), blobs, SafetensorsWriter.PT_METADATA);
        try (ModelFolder f = ModelFolder.open(dir)) {
            assertThatThrownBy(() -> LlamaModel.load(f, Compute.cpu()).close()).isInstanceOf(HfFormatException.class)
                    .hasMessageContaining(bad).hasMessageContaining("Infinity");
        }
    }

    @Test
    void rankLargerThanAModuleIsRefusedBeforeTraining() {
        // k_proj is 64 -> 32 (2 kv heads of 16): r = 40 cannot fit it
        assertThatThrownBy(() -> LoraAdapter.create(model, new LoraConfig(40, 8, 0, List.of("q_proj", "k_proj"), false), 0, "x"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("r=40").hasMessageContaining("model.layers.0.self_attn.k_proj")
                .hasMessageContaining("at most 32");
        assertThat(model.linears().values()).allMatch(l -> l.adapters().isEmpty());
    }

    @Test
    void cliExitsTwoNamingTheKey() throws IOException {
        Path bad = adapter(c -> c.put("r", "eight"));
        CliRun run = CliRun.of("generate", "--model", Golden.golden("models/llama-untied").toString(), "--adapter", bad.toString(),
                "--prompt", "hi", "--max-new-tokens", "2");
        assertThat(run.code()).as(run.err()).isEqualTo(2);
        assertThat(run.err()).contains("key 'r'").contains("adapter_config.json").doesNotContain("\tat ");
    }
}
