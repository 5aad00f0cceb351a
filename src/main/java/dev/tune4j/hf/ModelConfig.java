package dev.tune4j.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * The parts of a Hugging Face {@code config.json} that define a Llama-family decoder. Defaults are transformers' own
 * (LlamaConfig / Qwen2Config / MistralConfig) for keys a file leaves out.
 *
 * @param slidingWindow keys a query may see, itself included (Mistral); 0 = unlimited
 * @param attentionBias bias on q/k/v (Qwen2 always; Llama's {@code attention_bias} also puts one on o_proj)
 * @param outputBias bias on o_proj (Llama {@code attention_bias=true} only)
 */
public record ModelConfig(
        Arch arch,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        double rmsNormEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        int maxPositionEmbeddings,
        boolean tieWordEmbeddings,
        boolean attentionBias,
        boolean outputBias,
        boolean mlpBias,
        int slidingWindow,
        Integer bosTokenId,
        List<Integer> eosTokenIds,
        Integer padTokenId,
        String torchDtype) {

    public enum Arch {
        LLAMA("LlamaForCausalLM", "llama"), QWEN2("Qwen2ForCausalLM", "qwen2"), MISTRAL("MistralForCausalLM", "mistral");

        public final String className, modelType;

        Arch(String className, String modelType) {
            this.className = className;
            this.modelType = modelType;
        }
    }

    /**
     * RoPE frequency scaling. {@code type} is "default", "linear", "dynamic" or "llama3"; the llama3 fields are used only
     * by that type.
     */
    public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings) {
        public static final RopeScaling NONE = new RopeScaling("default", 1.0, 0, 0, 0);
    }

    public ModelConfig {
        require(vocabSize > 0 && hiddenSize > 0 && intermediateSize > 0 && numLayers > 0 && numHeads > 0, "sizes must be positive");
        require(numKvHeads > 0 && numHeads % numKvHeads == 0, "num_attention_heads (" + numHeads + ") must be a multiple of num_key_value_heads (" + numKvHeads + ")");
        require(headDim > 0 && headDim % 2 == 0, "head_dim must be positive and even, found " + headDim);
        eosTokenIds = List.copyOf(eosTokenIds);
    }

    private static void require(boolean ok, String what) {
        if (!ok) throw new UserError(what);
    }

    public int kvDim() {
        return numKvHeads * headDim;
    }

    public static ModelConfig load(Path file) {
        JsonNode c;
        try {
            c = new ObjectMapper().readTree(Files.readString(file));
        } catch (IOException e) {
            throw new HfFormatException(file, "cannot read config: " + e.getMessage(), e);
        }
        if (c == null || !c.isObject()) throw new HfFormatException(file, "expected a JSON object");
        try {
            return parse(c);
        } catch (IllegalArgumentException e) {
            throw new HfFormatException(file, e.getMessage());
        }
    }

    public static ModelConfig parse(JsonNode c) {
        String archName = c.path("architectures").path(0).asText("");
        String modelType = c.path("model_type").asText("");
        Arch arch = null;
        for (Arch a : Arch.values()) if (a.className.equals(archName) || (archName.isEmpty() && a.modelType.equals(modelType))) arch = a;
        if (arch == null)
            throw new UserError("unsupported architecture '" + (archName.isEmpty() ? modelType : archName)
                    + "': expected one of LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM");
        int hidden = intKey(c, "hidden_size", -1);
        int heads = intKey(c, "num_attention_heads", -1);
        require(hidden > 0, "hidden_size missing or not positive");
        require(heads > 0, "num_attention_heads missing or not positive");
        int kvHeads = intKey(c, "num_key_value_heads", heads);
        int headDim = c.hasNonNull("head_dim") ? intKey(c, "head_dim", -1) : hidden / heads;

        RopeScaling rs = RopeScaling.NONE;
        JsonNode r = c.path("rope_scaling");
        if (r.isObject()) {
            String type = r.hasNonNull("rope_type") ? r.get("rope_type").asText() : r.path("type").asText("default");
            double factor = r.path("factor").asDouble(1.0);
            switch (type) {
                case "default" -> {}
                case "linear", "dynamic" -> require(factor >= 1.0, "rope_scaling.factor must be >= 1, found " + factor);
                case "llama3" -> require(r.has("low_freq_factor") && r.has("high_freq_factor") && r.has("original_max_position_embeddings"),
                        "rope_scaling type llama3 needs low_freq_factor, high_freq_factor, original_max_position_embeddings");
                default -> throw new UserError("unsupported rope_scaling type '" + type + "': expected linear, dynamic or llama3");
            }
            rs = new RopeScaling(type, factor, r.path("low_freq_factor").asDouble(1), r.path("high_freq_factor").asDouble(4),
                    r.path("original_max_position_embeddings").asInt(8192));
        }
        boolean qkvBias, oBias;
        int window = 0;
        switch (arch) {
            case QWEN2 -> {
                qkvBias = true;
                oBias = false;
                if (c.path("use_sliding_window").asBoolean(false) && c.hasNonNull("sliding_window"))
                    throw new UserError("Qwen2 use_sliding_window=true is not supported (transformers applies it only to some layers)");
            }
            case MISTRAL -> {
                qkvBias = false;
                oBias = false;
                window = c.hasNonNull("sliding_window") ? intKey(c, "sliding_window", 0) : 0;
            }
            default -> {
                qkvBias = c.path("attention_bias").asBoolean(false);
                oBias = qkvBias;
            }
        }
        boolean mlpBias = arch == Arch.LLAMA && c.path("mlp_bias").asBoolean(false);
        var eos = new ArrayList<Integer>();
        JsonNode e = c.path("eos_token_id");
        if (e.isArray()) e.forEach(x -> eos.add(x.asInt()));
        else if (e.isIntegralNumber()) eos.add(e.asInt());
        double defaultTheta = arch == Arch.QWEN2 ? 1_000_000.0 : 10_000.0;
        int defaultInter = arch == Arch.LLAMA ? 11008 : arch == Arch.QWEN2 ? 22016 : 14336;
        return new ModelConfig(arch,
                intKey(c, "vocab_size", 32000),
                hidden,
                intKey(c, "intermediate_size", defaultInter),
                intKey(c, "num_hidden_layers", 32),
                heads, kvHeads, headDim,
                c.path("rms_norm_eps").asDouble(1e-6),
                c.path("rope_theta").asDouble(defaultTheta),
                rs,
                intKey(c, "max_position_embeddings", 2048),
                c.path("tie_word_embeddings").asBoolean(false),
                qkvBias, oBias, mlpBias, window,
                c.hasNonNull("bos_token_id") ? c.get("bos_token_id").asInt() : null,
                eos,
                c.hasNonNull("pad_token_id") ? c.get("pad_token_id").asInt() : null,
                c.path("torch_dtype").asText("float32"));
    }

    private static int intKey(JsonNode c, String key, int dflt) {
        JsonNode v = c.get(key);
        if (v == null || v.isNull()) {
            if (dflt < 0) throw new UserError("missing required key '" + key + "'");
            return dflt;
        }
        if (!v.isIntegralNumber()) throw new UserError("key '" + key + "': expected an integer, found " + v);
        return v.asInt();
    }

    /** Every tensor a checkpoint of this config must hold, in HF names, with its shape. */
    public LinkedHashMap<String, long[]> expectedTensors() {
        var m = new LinkedHashMap<String, long[]>();
        long h = hiddenSize, q = (long) numHeads * headDim, kv = kvDim(), inter = intermediateSize;
        m.put("model.embed_tokens.weight", new long[]{vocabSize, h});
        for (int i = 0; i < numLayers; i++) {
            String p = "model.layers." + i + ".";
            m.put(p + "input_layernorm.weight", new long[]{h});
            m.put(p + "self_attn.q_proj.weight", new long[]{q, h});
            m.put(p + "self_attn.k_proj.weight", new long[]{kv, h});
            m.put(p + "self_attn.v_proj.weight", new long[]{kv, h});
            m.put(p + "self_attn.o_proj.weight", new long[]{h, q});
            if (attentionBias) {
                m.put(p + "self_attn.q_proj.bias", new long[]{q});
                m.put(p + "self_attn.k_proj.bias", new long[]{kv});
                m.put(p + "self_attn.v_proj.bias", new long[]{kv});
            }
            if (outputBias) m.put(p + "self_attn.o_proj.bias", new long[]{h});
            m.put(p + "post_attention_layernorm.weight", new long[]{h});
            m.put(p + "mlp.gate_proj.weight", new long[]{inter, h});
            m.put(p + "mlp.up_proj.weight", new long[]{inter, h});
            m.put(p + "mlp.down_proj.weight", new long[]{h, inter});
            if (mlpBias) {
                m.put(p + "mlp.gate_proj.bias", new long[]{inter});
                m.put(p + "mlp.up_proj.bias", new long[]{inter});
                m.put(p + "mlp.down_proj.bias", new long[]{h});
            }
        }
        m.put("model.norm.weight", new long[]{h});
        if (!tieWordEmbeddings) m.put("lm_head.weight", new long[]{vocabSize, h});
        return m;
    }

    /** config.json as transformers 4.44 writes it for this architecture (keys it reads back to the same config). */
    public Map<String, Object> toJson() {
        var m = new LinkedHashMap<String, Object>();
        m.put("architectures", List.of(arch.className));
        m.put("attention_dropout", 0.0);
        if (arch == Arch.LLAMA) {
            m.put("attention_bias", attentionBias);
            m.put("mlp_bias", mlpBias);
            m.put("pretraining_tp", 1);
        }
        if (bosTokenId != null) m.put("bos_token_id", bosTokenId);
        if (!eosTokenIds.isEmpty()) m.put("eos_token_id", eosTokenIds.size() == 1 ? eosTokenIds.getFirst() : eosTokenIds);
        if (padTokenId != null) m.put("pad_token_id", padTokenId);
        if (headDim != hiddenSize / numHeads) m.put("head_dim", headDim);
        m.put("hidden_act", "silu");
        m.put("hidden_size", hiddenSize);
        m.put("initializer_range", 0.02);
        m.put("intermediate_size", intermediateSize);
        m.put("max_position_embeddings", maxPositionEmbeddings);
        m.put("model_type", arch.modelType);
        m.put("num_attention_heads", numHeads);
        m.put("num_hidden_layers", numLayers);
        m.put("num_key_value_heads", numKvHeads);
        m.put("rms_norm_eps", rmsNormEps);
        if (ropeScaling.type().equals("default")) m.put("rope_scaling", null);
        else {
            var r = new LinkedHashMap<String, Object>();
            r.put("rope_type", ropeScaling.type());
            r.put("factor", ropeScaling.factor());
            if (ropeScaling.type().equals("llama3")) {
                r.put("low_freq_factor", ropeScaling.lowFreqFactor());
                r.put("high_freq_factor", ropeScaling.highFreqFactor());
                r.put("original_max_position_embeddings", ropeScaling.originalMaxPositionEmbeddings());
            }
            m.put("rope_scaling", r);
        }
        m.put("rope_theta", ropeTheta);
        if (arch == Arch.MISTRAL) m.put("sliding_window", slidingWindow == 0 ? null : slidingWindow);
        if (arch == Arch.QWEN2) {
            m.put("sliding_window", maxPositionEmbeddings);
            m.put("use_sliding_window", false);
        }
        m.put("tie_word_embeddings", tieWordEmbeddings);
        m.put("torch_dtype", torchDtype);
        m.put("transformers_version", "4.44.2");
        m.put("use_cache", true);
        m.put("vocab_size", vocabSize);
        return m;
    }
}
