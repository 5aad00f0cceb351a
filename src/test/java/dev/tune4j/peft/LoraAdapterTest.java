package dev.tune4j.peft;

import dev.tune4j.hf.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.*;

/** Target matching as PEFT does it, initialisation, merge round trip, and named errors for adapters that do not fit. */
class LoraAdapterTest {
    @TempDir
    Path tmp;

    static LlamaModel model;

    @BeforeAll
    static void build() {
        model = LlamaModel.random(ConfigPresets.tiny(), 5, Compute.cpu());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static LoraConfig targets(String... t) {
        return new LoraConfig(4, 8, 0, List.of(t), false);
    }

    @Test
    void targetModulesMatchLikePeft() {
        assertThat(targets("all-linear").targets("model.layers.0.mlp.down_proj")).isTrue();
        assertThat(targets("all-linear").targets("lm_head")).isFalse();
        assertThat(targets("q_proj", "v_proj").targets("model.layers.3.self_attn.q_proj")).isTrue();
        assertThat(targets("q_proj", "v_proj").targets("model.layers.3.self_attn.k_proj")).isFalse();
        assertThat(targets("self_attn.o_proj").targets("model.layers.1.self_attn.o_proj")).as("dotted suffix").isTrue();
        assertThat(targets("proj").targets("model.layers.1.self_attn.q_proj")).as("suffix must be a whole name").isFalse();
        assertThat(targets(".*layers\\.[01]\\..*(q|v)_proj").targets("model.layers.1.self_attn.v_proj")).as("regex, full match").isTrue();
        assertThat(targets(".*layers\\.[01]\\..*(q|v)_proj").targets("model.layers.2.self_attn.v_proj")).isFalse();
        assertThat(new LoraConfig(16, 16, 0, List.of("q_proj"), true).scaling()).isEqualTo(4.0);
        assertThat(new LoraConfig(16, 32, 0, List.of("q_proj"), false).scaling()).isEqualTo(2.0);
    }

    @Test
    void freshAdapterIsANoOpAndMergeRoundTrips() {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            var ids = Tensors.longs(new long[]{1, 5, 9, 13}, 1, 4);
            float[] base = Tensors.toFloats(model.logits(ids, null, null));
            try (LoraAdapter a = LoraAdapter.create(model, targets("q_proj", "down_proj"), 3, "x")) {
                assertThat(a.modules()).hasSize(2 * 4);
                assertThat(Tensors.toFloats(model.logits(ids, null, null))).as("B = 0: no change").containsExactly(base);
                var lA = a.modules().values().iterator().next().lora_A;
                double bound = 1 / Math.sqrt(lA.size(1));
                for (float v : Tensors.toFloats(lA)) assertThat(Math.abs(v)).isLessThanOrEqualTo((float) bound);
                for (var l : a.modules().values()) l.lora_B.fill_(new org.bytedeco.pytorch.Scalar(0.01));
                float[] adapted = Tensors.toFloats(model.logits(ids, null, null));
                assertThat(adapted).isNotEqualTo(base);
                a.merge();
                dev.tune4j.TensorAssert.assertClose("merged", Tensors.toFloats(model.logits(ids, null, null)), adapted, 1e-5);
                a.unmerge();
            }
            dev.tune4j.TensorAssert.assertClose("closed adapter leaves the base as it was", Tensors.toFloats(model.logits(ids, null, null)), base, 1e-5);
        }
    }

    @Test
    void noMatchingTargetIsAnError() {
        assertThatThrownBy(() -> LoraAdapter.create(model, targets("c_attn"), 0, "x")).hasMessageContaining("not found in the base model").hasMessageContaining("c_attn");
    }

    @Test
    void adaptersThatDoNotFitAreNamedErrors() throws Exception {
        Path dir = tmp.resolve("a");
        try (LoraAdapter a = LoraAdapter.create(model, targets("q_proj"), 0, "x")) {
            a.save(dir);
        }
        // wrong rank in the tensors
        Path bad = tmp.resolve("bad");
        Files.createDirectories(bad);
        Files.copy(dir.resolve("adapter_config.json"), bad.resolve("adapter_config.json"));
        SafetensorsWriter.write(bad.resolve("adapter_model.safetensors"), Map.of(
                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", TensorBlob.ofFloats(new float[8 * 128], 8, 128),
                "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", TensorBlob.ofFloats(new float[128 * 8], 128, 8)), Map.of());
        assertThatThrownBy(() -> LoraAdapter.load(bad, model)).isInstanceOf(HfFormatException.class)
                .hasMessageContaining("q_proj.lora_A.weight").hasMessageContaining("expected shape [4, 128]").hasMessageContaining("[8, 128]");
        // a module the model does not have
        SafetensorsWriter.write(bad.resolve("adapter_model.safetensors"), Map.of(
                "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", TensorBlob.ofFloats(new float[4 * 128], 4, 128),
                "base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", TensorBlob.ofFloats(new float[128 * 4], 128, 4)), Map.of());
        assertThatThrownBy(() -> LoraAdapter.load(bad, model)).hasMessageContaining("model.layers.9.self_attn.q_proj").hasMessageContaining("does not have");
        // base_model_name_or_path pointing at a different model
        Path other = tmp.resolve("other-base");
        Files.createDirectories(other);
        Files.writeString(other.resolve("config.json"), new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(ConfigPresets.stories260k().toJson()));
        String cfg = Files.readString(dir.resolve("adapter_config.json")).replace("\"base_model_name_or_path\": \"x\"", "\"base_model_name_or_path\": \"" + other + "\"");
        Files.writeString(dir.resolve("adapter_config.json"), cfg);
        assertThatThrownBy(() -> LoraAdapter.load(dir, model)).hasMessageContaining("base_model_name_or_path").hasMessageContaining("hidden 64");
        // not LoRA at all
        Files.writeString(dir.resolve("adapter_config.json"), "{\"peft_type\": \"IA3\"}");
        assertThatThrownBy(() -> LoraAdapter.load(dir, model)).hasMessageContaining("peft_type: expected LORA");
    }
}
