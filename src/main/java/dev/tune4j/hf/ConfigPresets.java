package dev.tune4j.hf;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/** Published model shapes with literal numbers, for benchmarks and demos that must not need a download. */
public final class ConfigPresets {
    private ConfigPresets() {}

    /** karpathy's stories260K (llama2.c), as converted: 5 layers of dim 64, 8 heads / 4 KV heads, vocab 512, tied. */
    public static ModelConfig stories260k() {
        return new ModelConfig(ModelConfig.Arch.LLAMA, 512, 64, 172, 5, 8, 4, 8, 1e-5, 10_000, ModelConfig.RopeScaling.NONE,
                512, true, false, false, false, 0, 1, List.of(2), null, "float32");
    }

    /** HuggingFaceTB/SmolLM2-135M's config.json: 30 layers of dim 576, 9 heads / 3 KV heads, vocab 49152, tied. */
    public static ModelConfig smollm2_135m() {
        return new ModelConfig(ModelConfig.Arch.LLAMA, 49_152, 576, 1536, 30, 9, 3, 64, 1e-5, 100_000, ModelConfig.RopeScaling.NONE,
                8192, true, false, false, false, 0, 1, List.of(2), 2, "bfloat16");
    }

    /** Qwen/Qwen2.5-0.5B's config.json: 24 layers of dim 896, 14 heads / 2 KV heads, q/k/v bias, vocab 151936, tied (494 M parameters). */
    public static ModelConfig qwen25_05b() {
        return new ModelConfig(ModelConfig.Arch.QWEN2, 151_936, 896, 4864, 24, 14, 2, 64, 1e-6, 1_000_000, ModelConfig.RopeScaling.NONE,
                32_768, true, true, false, false, 0, null, List.of(151_643), null, "bfloat16");
    }

    /** A tiny Llama for the demo and tests: 4 layers of dim 128, 4 heads / 2 KV heads, vocab 259 (bytes + 3 specials). */
    public static ModelConfig tiny() {
        return new ModelConfig(ModelConfig.Arch.LLAMA, 259, 128, 344, 4, 4, 2, 32, 1e-5, 10_000, ModelConfig.RopeScaling.NONE,
                1024, true, false, false, false, 0, 1, List.of(2), null, "float32");
    }

    public static final Map<String, Supplier<ModelConfig>> BY_NAME = Map.of(
            "stories260k", ConfigPresets::stories260k,
            "smollm2-135m", ConfigPresets::smollm2_135m,
            "qwen2.5-0.5b", ConfigPresets::qwen25_05b,
            "tiny", ConfigPresets::tiny);

    public static ModelConfig byName(String name) {
        var s = BY_NAME.get(name);
        if (s == null) throw new UserError("unknown shape '" + name + "': expected one of " + BY_NAME.keySet().stream().sorted().toList());
        return s.get();
    }
}
