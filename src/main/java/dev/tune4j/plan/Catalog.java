package dev.tune4j.plan;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.hf.ModelConfig.Arch;
import dev.tune4j.hf.ModelConfig.RopeScaling;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Published shapes of the models people fine-tune most, with literal numbers from their config.json files
 * (../shared/reference/memory-and-quantization.md §6). Local config.json always wins: fine-tuned copies change vocab sizes.
 */
public final class Catalog {
    private Catalog() {}

    private static ModelConfig llama(int v, int h, int inter, int l, int a, int k, boolean tied, double theta, int maxPos, RopeScaling rs) {
        return new ModelConfig(Arch.LLAMA, v, h, inter, l, a, k, h / a, 1e-5, theta, rs, maxPos, tied, false, false, false, 0, 1, List.of(2), null, "bfloat16");
    }

    private static ModelConfig qwen2(int v, int h, int inter, int l, int a, int k, boolean tied, int maxPos) {
        return new ModelConfig(Arch.QWEN2, v, h, inter, l, a, k, h / a, 1e-6, 1_000_000, RopeScaling.NONE, maxPos, tied, true, false, false, 0, null, List.of(151643), null, "bfloat16");
    }

    private static final RopeScaling L32 = new RopeScaling("llama3", 32, 1, 4, 8192), L31 = new RopeScaling("llama3", 8, 1, 4, 8192);

    public static final Map<String, ModelConfig> MODELS = new LinkedHashMap<>();

    static {
        MODELS.put("qwen2.5-0.5b", qwen2(151_936, 896, 4864, 24, 14, 2, true, 32_768));
        MODELS.put("qwen2.5-1.5b", qwen2(151_936, 1536, 8960, 28, 12, 2, true, 32_768));
        MODELS.put("qwen2.5-3b", qwen2(151_936, 2048, 11_008, 36, 16, 2, true, 32_768));
        MODELS.put("qwen2.5-7b", qwen2(152_064, 3584, 18_944, 28, 28, 4, false, 131_072));
        MODELS.put("smollm2-135m", llama(49_152, 576, 1536, 30, 9, 3, true, 100_000, 8192, RopeScaling.NONE));
        MODELS.put("smollm2-360m", llama(49_152, 960, 2560, 32, 15, 5, true, 100_000, 8192, RopeScaling.NONE));
        MODELS.put("smollm2-1.7b", llama(49_152, 2048, 8192, 24, 32, 32, true, 130_000, 8192, RopeScaling.NONE));
        MODELS.put("llama-3.2-1b", llama(128_256, 2048, 8192, 16, 32, 8, true, 500_000, 131_072, L32));
        MODELS.put("llama-3.2-3b", llama(128_256, 3072, 8192, 28, 24, 8, true, 500_000, 131_072, L32));
        MODELS.put("llama-3.1-8b", llama(128_256, 4096, 14_336, 32, 32, 8, false, 500_000, 131_072, L31));
        MODELS.put("llama-2-7b", llama(32_000, 4096, 11_008, 32, 32, 32, false, 10_000, 4096, RopeScaling.NONE));
        MODELS.put("llama-2-13b", llama(32_000, 5120, 13_824, 40, 40, 40, false, 10_000, 4096, RopeScaling.NONE));
        MODELS.put("llama-2-70b", llama(32_000, 8192, 28_672, 80, 64, 8, false, 10_000, 4096, RopeScaling.NONE));
        MODELS.put("mistral-7b", new ModelConfig(Arch.MISTRAL, 32_000, 4096, 14_336, 32, 32, 8, 128, 1e-5, 10_000, RopeScaling.NONE, 32_768,
                false, false, false, false, 4096, 1, List.of(2), null, "bfloat16"));
    }

    public static ModelConfig get(String name) {
        ModelConfig c = MODELS.get(name.toLowerCase());
        if (c == null) throw new UserError("unknown model '" + name + "': expected a model folder or one of " + MODELS.keySet());
        return c;
    }
}
