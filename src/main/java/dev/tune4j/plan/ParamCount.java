package dev.tune4j.plan;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.ModelConfig;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Exact parameter counts by component from a config, and the trainable count of LoRA for any rank and target set:
 * N = V·h·(tied ? 1 : 2) + h + L·[h·(a·d) + 2·h·(k·d) + (a·d)·h + 3·h·I + 2h + biases]; LoRA adds r·(in + out) per module,
 * DoRA another out.
 */
public final class ParamCount {
    private ParamCount() {}

    public static final List<String> PROJECTIONS = List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    /** Parameters by component: embeddings, attention (incl. biases), mlp, norms, lm_head (0 when tied). */
    public static Map<String, Long> byComponent(ModelConfig c) {
        long h = c.hiddenSize(), q = (long) c.numHeads() * c.headDim(), kv = c.kvDim(), inter = c.intermediateSize(), layers = c.numLayers();
        long attn = h * q + 2 * h * kv + q * h + (c.attentionBias() ? q + 2 * kv : 0) + (c.outputBias() ? h : 0);
        long mlp = 3 * h * inter + (c.mlpBias() ? 2 * inter + h : 0);
        var m = new LinkedHashMap<String, Long>();
        m.put("embeddings", (long) c.vocabSize() * h);
        m.put("attention", layers * attn);
        m.put("mlp", layers * mlp);
        m.put("norms", layers * 2 * h + h);
        m.put("lm_head", c.tieWordEmbeddings() ? 0L : (long) c.vocabSize() * h);
        return m;
    }

    public static long total(ModelConfig c) {
        return byComponent(c).values().stream().mapToLong(Long::longValue).sum();
    }

    /** Everything but the embedding and an untied lm_head. */
    public static long nonEmbedding(ModelConfig c) {
        var m = byComponent(c);
        return total(c) - m.get("embeddings") - m.get("lm_head");
    }

    /** (in, out) of a projection. */
    static long[] shape(ModelConfig c, String proj) {
        long h = c.hiddenSize(), q = (long) c.numHeads() * c.headDim(), kv = c.kvDim(), inter = c.intermediateSize();
        return switch (proj) {
            case "q_proj" -> new long[]{h, q};
            case "k_proj", "v_proj" -> new long[]{h, kv};
            case "o_proj" -> new long[]{q, h};
            case "gate_proj", "up_proj" -> new long[]{h, inter};
            case "down_proj" -> new long[]{inter, h};
            default -> throw new UserError("unknown projection '" + proj + "': expected one of " + PROJECTIONS + " or all-linear");
        };
    }

    /** The projections a target list names ("all-linear" = all seven). */
    public static List<String> targets(List<String> targets) {
        return targets.size() == 1 && targets.getFirst().equals("all-linear") ? PROJECTIONS : targets;
    }

    /** Weights of the seven projections in all layers (what 4-bit quantization compresses; biases excluded). */
    public static long linear(ModelConfig c) {
        long n = 0;
        for (String t : PROJECTIONS) {
            long[] s = shape(c, t);
            n += s[0] * s[1];
        }
        return n * c.numLayers();
    }

    /** Elements of the largest projection weight (the dequantization buffer of 4-bit training). */
    public static long largestLinear(ModelConfig c) {
        long m = 0;
        for (String t : PROJECTIONS) m = Math.max(m, shape(c, t)[0] * shape(c, t)[1]);
        return m;
    }

    /** Elements of the largest single tensor (the embedding for every catalog model). */
    public static long largestTensor(ModelConfig c) {
        return Math.max((long) c.vocabSize() * c.hiddenSize(), largestLinear(c));
    }

    /** LoRA's trainable parameters: r·(in + out) for each targeted projection in every layer ("all-linear" = all seven). */
    public static long lora(ModelConfig c, int r, List<String> targets) {
        long n = 0;
        for (String t : targets(targets)) {
            long[] s = shape(c, t);
            n += (long) r * (s[0] + s[1]);
        }
        return n * c.numLayers();
    }

    /** DoRA's magnitude vectors: out per targeted projection in every layer. */
    public static long doraMagnitudes(ModelConfig c, List<String> targets) {
        long n = 0;
        for (String t : targets(targets)) n += shape(c, t)[1];
        return n * c.numLayers();
    }
}
