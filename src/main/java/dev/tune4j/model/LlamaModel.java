package dev.tune4j.model;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.*;
import java.util.function.Function;

/**
 * A Llama-family decoder (Llama 2/3, SmolLM, TinyLlama, Qwen2, Mistral): token embedding → N pre-norm blocks → final
 * RMSNorm → lm_head (tied to the embedding or not). Field names are the checkpoint keys, so loading is an identity map.
 */
public final class LlamaModel implements AutoCloseable {
    public final ModelConfig config;
    public final Compute compute;
    public Tensor embed_tokens;           // (V, C); bf16 after {@link #embeddingsToBf16}
    public final List<DecoderLayer> layers;
    public final RmsNorm norm;            // (C)
    public Tensor lm_head;                // (V, C); the same tensor as embed_tokens when tied
    /** Per-row adapter choice for the next passes, shared by every projection (see {@link Linear.Routing}). */
    public final Linear.Routing routing = new Linear.Routing();
    final Rope rope;

    private LlamaModel(ModelConfig c, Compute compute, Function<String, Tensor> w) {
        this.config = c;
        this.compute = compute;
        this.embed_tokens = w.apply("model.embed_tokens.weight");
        var ls = new ArrayList<DecoderLayer>();
        for (int i = 0; i < c.numLayers(); i++) {
            String p = "model.layers." + i + ".";
            Function<String, Linear> linear = n -> new Linear(w.apply(p + n + ".weight"),
                    hasBias(c, n) ? w.apply(p + n + ".bias") : null, routing, compute.mixed());
            var attn = new Attention(c, linear.apply("self_attn.q_proj"), linear.apply("self_attn.k_proj"),
                    linear.apply("self_attn.v_proj"), linear.apply("self_attn.o_proj"));
            var mlp = new Mlp(linear.apply("mlp.gate_proj"), linear.apply("mlp.up_proj"), linear.apply("mlp.down_proj"));
            ls.add(new DecoderLayer(i, new RmsNorm(w.apply(p + "input_layernorm.weight"), c.rmsNormEps()), attn,
                    new RmsNorm(w.apply(p + "post_attention_layernorm.weight"), c.rmsNormEps()), mlp));
        }
        this.layers = List.copyOf(ls);
        this.norm = new RmsNorm(w.apply("model.norm.weight"), c.rmsNormEps());
        this.lm_head = c.tieWordEmbeddings() ? embed_tokens : w.apply("lm_head.weight");
        this.rope = new Rope(c, compute);
    }

    private static boolean hasBias(ModelConfig c, String n) {
        return switch (n) {
            case "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" -> c.attentionBias();
            case "self_attn.o_proj" -> c.outputBias();
            default -> c.mlpBias();
        };
    }

    /** Loads and checks every tensor of a HF folder (any stored float dtype, converted to fp32, then placed by {@code compute}). */
    public static LlamaModel load(ModelFolder folder, Compute compute) {
        return load(folder, compute, bytes -> {});
    }

    /** As {@link #load(ModelFolder, Compute)}, reporting the stored bytes of each tensor as it is loaded (for progress bars). */
    public static LlamaModel load(ModelFolder folder, Compute compute, java.util.function.LongConsumer onLoaded) {
        return load(folder, compute, onLoaded, name -> false);
    }

    /**
     * As above; tensors named by {@code later} are not read (an empty placeholder stands in) because the caller attaches
     * them another way, e.g. as 4-bit weights via {@link Linear#quantize}.
     */
    public static LlamaModel load(ModelFolder folder, Compute compute, java.util.function.LongConsumer onLoaded, java.util.function.Predicate<String> later) {
        folder.validate();
        if (folder.bitsandbytes4bit() && !later.test("model.layers.0.self_attn.q_proj.weight"))
            throw new dev.tune4j.hf.HfFormatException(folder.dir(), "a bitsandbytes 4-bit checkpoint: its projections are packed codes, not weights "
                    + "(tune4j loads it through QLoRA: train --method qlora, generate, chat, eval, logits)");
        return new LlamaModel(folder.config(), compute, name -> {
            if (later.test(name)) return Tensors.escape(() -> torch.empty(0));
            var info = folder.info(name);
            Tensor t = Tensors.escape(() -> compute.place(read(folder, name, torch.ScalarType.Float)));
            onLoaded.accept(info.byteSize());
            return t;
        });
    }

    /**
     * One stored tensor copied from the folder's mapping into native memory once, converted natively to {@code dtype}
     * (never through Java arrays), and checked: a NaN/Inf weight would only show as a NaN loss or garbage text much later.
     */
    public static Tensor read(ModelFolder folder, String name, torch.ScalarType dtype) {
        var info = folder.info(name);
        return Tensors.copyOf(folder.fileOf(name).bytes(name).address(), scalarType(info.dtype()), dtype, info.shape(), (i, v) -> {
            throw new dev.tune4j.hf.HfFormatException(folder.dir(), "tensor '" + name + "' holds a non-finite value (" + v + " at flat index " + i + ")");
        });
    }

    static torch.ScalarType scalarType(dev.tune4j.hf.DType d) {
        return switch (d) {
            case F32 -> torch.ScalarType.Float;
            case BF16 -> torch.ScalarType.BFloat16;
            case F16 -> torch.ScalarType.Half;
            case F64 -> torch.ScalarType.Double;
            default -> throw new IllegalStateException("validate() admits float weights only, found " + d);
        };
    }

    /** Builds a model from named host fp32 tensors (e.g. a converted llama2.c checkpoint). */
    public static LlamaModel fromTensors(ModelConfig c, Map<String, Tensor> tensors, Compute compute) {
        return new LlamaModel(c, compute, name -> {
            Tensor t = tensors.get(name);
            if (t == null) throw new UserError("missing tensor '" + name + "'");
            return Tensors.escape(() -> compute.place(t).clone());
        });
    }

    /** Random weights for benchmarks: N(0, 0.02²) matrices (initializer_range), ones for norms, zeros for biases. */
    public static LlamaModel random(ModelConfig c, long seed, Compute compute) {
        torch.manual_seed(seed);
        var shapes = c.expectedTensors();
        return new LlamaModel(c, compute, name -> Tensors.escape(() -> {
            long[] s = shapes.get(name);
            Tensor t = name.endsWith("norm.weight") ? torch.ones(s) : name.endsWith(".bias") ? torch.zeros(s)
                    : torch.randn(s).mul(new Scalar(0.02));
            return compute.place(t);
        }));
    }

    /**
     * The final hidden states (after the last RMSNorm) for new tokens; see {@link Batch} for the inputs.
     *
     * @param cache        past keys/values (appended to), or null
     * @param layerOutputs if not null, receives the embeddings and every layer's output (HF output_hidden_states, minus the last)
     */
    public Tensor forward(Batch in, KvCache cache, List<Tensor> layerOutputs) {
        Tensor x = embed(in.ids());                                                                   // (B, T, C)
        if (layerOutputs != null) layerOutputs.add(x);
        Context ctx = context(in, cache);
        for (DecoderLayer layer : layers) {
            Tensor h = x; // a scope per layer: its temporaries are freed now, not at the end of the pass
            x = Tensors.scoped(() -> layer.forward(h, ctx.cos(), ctx.sin(), ctx.mask(), cache));    // (B, T, C)
            if (layerOutputs != null) layerOutputs.add(x);
        }
        if (cache != null) cache.advance(in.ids().size(1));
        return norm.forward(x);                                                                       // (B, T, C)
    }

    /**
     * Continuous batching's decoding step: one new token per row, row i continuing the sequence cached in {@code caches[i]}
     * (each at its own length), so sequences can join and leave between steps. Returns the final hidden states (B, 1, C)
     * and advances every cache by one.
     */
    public Tensor decodeRows(long[] tokens, KvCache[] caches) {
        int b = tokens.length;
        long[] pos = new long[b];
        for (int i = 0; i < b; i++) pos[i] = caches[i].length();
        Tensor positions = compute.placeIndex(Tensors.longs(pos, b, 1));                            // (B, 1)
        long maxPos = config.ropeScaling().type().equals("dynamic") ? java.util.Arrays.stream(pos).max().orElse(0) : 0;
        Tensor[] cs = rope.cosSin(positions, maxPos);                                                 // (B, 1, 1, hd) each
        Tensor x = embed(compute.placeIndex(Tensors.longs(tokens, b, 1)));                           // (B, 1, C)
        int window = config.slidingWindow();
        for (DecoderLayer layer : layers) {
            Tensor h = x;
            x = Tensors.scoped(() -> layer.forwardRows(h, cs[0], cs[1], caches, window));             // (B, 1, C)
        }
        for (KvCache c : caches) c.advance(1);
        return norm.forward(x);
    }

    /** Convenience for unpacked batches: {@link #forward(Batch, KvCache, List)}. */
    public Tensor forward(Tensor inputIds, Tensor positionIds, Tensor attentionMask, KvCache cache, List<Tensor> layerOutputs) {
        return forward(new Batch(inputIds, positionIds, attentionMask, null), cache, layerOutputs);
    }

    /** Token embeddings (B, T) → (B, T, C), in the activations' dtype. */
    public Tensor embed(Tensor ids) {
        return torch.embedding(embed_tokens, ids).to(compute.dtype());
    }

    /**
     * The bf16-matmul path ({@link Compute#mixed}): a frozen embedding, and a frozen untied head, held in bf16. The
     * lookup upcasts its rows, and a tied head is the same bf16 matrix as the head's GEMM operand, so a tied model holds
     * one bf16 matrix instead of an fp32 one plus a bf16 copy (Qwen2.5-0.5B: 272 MiB instead of 816). Exact for a folder
     * that stores them in bf16 ({@link #storesEmbeddingsBf16}); a trainable embedding or head stays as it is.
     */
    public void embeddingsToBf16() {
        if (!compute.mixed() || embed_tokens.requires_grad() || lm_head.requires_grad()) return;
        var bf16 = torch.ScalarType.BFloat16;
        Tensor e = Tensors.escape(() -> embed_tokens.to(bf16)), h = lm_head == embed_tokens ? null : Tensors.escape(() -> lm_head.to(bf16));
        holdEmbeddingsBf16(e, h);
    }

    /** Whether a folder stores its embedding (and an untied head) in bf16: then holding them in bf16 is exact. */
    public static boolean storesEmbeddingsBf16(ModelFolder f) {
        return f.info("model.embed_tokens.weight").dtype() == dev.tune4j.hf.DType.BF16
                && (f.config().tieWordEmbeddings() || f.info("lm_head.weight").dtype() == dev.tune4j.hf.DType.BF16);
    }

    /** Whether the embedding is held in bf16 ({@link #embeddingsToBf16}, {@link #holdEmbeddingsBf16}). */
    public boolean embeddingsBf16() {
        return embed_tokens.scalar_type().intern() == torch.ScalarType.BFloat16;
    }

    /** Replaces the embedding (and, untied, the head: {@code head} null when tied) by bf16 tensors the model now owns. */
    public void holdEmbeddingsBf16(Tensor embedding, Tensor head) {
        boolean tied = lm_head == embed_tokens;
        if (tied != (head == null)) throw new IllegalStateException("a head is given exactly when the model's is untied");
        if (!tied) lm_head.close();
        embed_tokens.close();
        if (head16 != null) head16.close();
        head16 = null;
        embed_tokens = embedding;
        lm_head = tied ? embedding : head;
    }


    /** What every layer of one pass shares: RoPE angles for its positions and the attention mask. */
    public record Context(Tensor cos, Tensor sin, AttentionMask.Plan mask) {}

    /** RoPE angles and attention mask for one pass (shared by every layer; layer-wise training calls this directly). */
    public Context context(Batch in, KvCache cache) {
        long b = in.ids().size(0), t = in.ids().size(1);
        long past = cache == null ? 0 : cache.length();
        Tensor positions = in.positions() != null ? in.positions() : positionsFor(in.attentionMask(), b, past, t, compute);
        long maxPos = config.ropeScaling().type().equals("dynamic") ? positions.max().item_long() : 0;
        Tensor[] cs = rope.cosSin(positions, maxPos);                                                 // (B, 1, T, hd) each
        var mask = in.segments() != null ? AttentionMask.packed(in.segments(), compute)               // (B, 1, T, T)
                : AttentionMask.build(in.attentionMask(), past, t, config.slidingWindow(), compute);  // (B, 1, T, S) or none
        return new Context(cs[0], cs[1], mask);
    }

    /** fp32 logits for the given hidden states (B, T, C) → (B, T, V). */
    public Tensor logits(Tensor hidden) {
        return headGemm(hidden).to(torch.ScalarType.Float);
    }

    /** The head's GEMM in its own precision (bf16 on the bf16-matmul path), before logits' fp32 cast. */
    public Tensor headGemm(Tensor hidden) {
        if (!compute.mixed()) return Linear.gemm(hidden, lm_head);
        return Linear.gemm(hidden.to(torch.ScalarType.BFloat16), headBf16());
    }

    /** The gradient of {@link #headGemm}'s input for its output's: g · W in the GEMM's precision (a frozen head's backward). */
    public Tensor headGemmBackward(Tensor gradLogits) {
        Tensor w = compute.mixed() ? headBf16() : lm_head;
        return torch.matmul(gradLogits.to(w.scalar_type()), w);
    }

    private Tensor head16;     // the bf16-matmul path's copy of a frozen head, rebuilt when the head changes
    private long head16Version;

    /** The head in bf16: a trainable one cast per use (autocast), a frozen one kept (the head is the largest GEMM). */
    private Tensor headBf16() {
        if (lm_head.scalar_type().intern() == torch.ScalarType.BFloat16) return lm_head; // held in bf16 (embeddingsBf16)
        if (lm_head.requires_grad()) return lm_head.to(torch.ScalarType.BFloat16);
        if (head16 == null || head16Version != lm_head.__dispatch__version()) {
            if (head16 != null) head16.close();
            head16 = Tensors.escape(() -> lm_head.to(torch.ScalarType.BFloat16));
            head16Version = lm_head.__dispatch__version();
        }
        return head16;
    }

    /** Convenience: logits of every position of one padded or unpadded batch, no cache. */
    public Tensor logits(Tensor inputIds, Tensor positionIds, Tensor attentionMask) {
        return logits(forward(new Batch(inputIds, positionIds, attentionMask, null), null, null));
    }

    static Tensor positionsFor(Tensor attentionMask, long b, long past, long t, Compute compute) {
        if (attentionMask == null) return compute.placeIndex(torch.arange(new Scalar(past), new Scalar(past + t)).view(1, t).expand(b, t));
        Tensor pos = torch.cumsum(attentionMask.to(torch.ScalarType.Long), -1).sub(new Scalar(1));
        pos = pos.masked_fill(attentionMask.eq(new Scalar(0)), new Scalar(1));
        return pos.narrow(1, pos.size(1) - t, t);
    }

    public KvCache newCache(long batch, int capacity) {
        return new KvCache(config.numLayers(), batch, config.numKvHeads(), config.headDim(), capacity, compute);
    }

    /** Parameter count (tied lm_head counted once). */
    public long parameterCount() {
        long n = 0;
        for (long[] s : config.expectedTensors().values()) {
            long k = 1;
            for (long d : s) k *= d;
            n += k;
        }
        return n;
    }

    /** All weights by HF name (the tied lm_head not repeated): for saving. */
    public LinkedHashMap<String, Tensor> namedTensors() {
        var m = new LinkedHashMap<String, Tensor>();
        m.put("model.embed_tokens.weight", embed_tokens);
        for (DecoderLayer l : layers) {
            String p = "model.layers." + l.index + ".";
            m.put(p + "input_layernorm.weight", l.input_layernorm.weight);
            putLinear(m, p + "self_attn.q_proj", l.self_attn.q_proj);
            putLinear(m, p + "self_attn.k_proj", l.self_attn.k_proj);
            putLinear(m, p + "self_attn.v_proj", l.self_attn.v_proj);
            putLinear(m, p + "self_attn.o_proj", l.self_attn.o_proj);
            m.put(p + "post_attention_layernorm.weight", l.post_attention_layernorm.weight);
            putLinear(m, p + "mlp.gate_proj", l.mlp.gate_proj);
            putLinear(m, p + "mlp.up_proj", l.mlp.up_proj);
            putLinear(m, p + "mlp.down_proj", l.mlp.down_proj);
        }
        m.put("model.norm.weight", norm.weight);
        if (!config.tieWordEmbeddings()) m.put("lm_head.weight", lm_head);
        return m;
    }

    /** Every projection by HF module name ("model.layers.0.self_attn.q_proj"), lm_head last — what LoRA can target. */
    public LinkedHashMap<String, Linear> linears() {
        var m = new LinkedHashMap<String, Linear>();
        for (DecoderLayer l : layers) {
            String p = "model.layers." + l.index + ".";
            m.put(p + "self_attn.q_proj", l.self_attn.q_proj);
            m.put(p + "self_attn.k_proj", l.self_attn.k_proj);
            m.put(p + "self_attn.v_proj", l.self_attn.v_proj);
            m.put(p + "self_attn.o_proj", l.self_attn.o_proj);
            m.put(p + "mlp.gate_proj", l.mlp.gate_proj);
            m.put(p + "mlp.up_proj", l.mlp.up_proj);
            m.put(p + "mlp.down_proj", l.mlp.down_proj);
        }
        return m;
    }

    /** Switches the adapter of that name off (or on again) in every projection that has it; false when none has it. */
    public boolean enableAdapter(String name, boolean on) {
        boolean found = false;
        for (Linear l : linears().values())
            if (l.adapters().containsKey(name)) {
                l.enable(name, on);
                found = true;
            }
        return found;
    }

    /** Makes every weight trainable (full fine-tuning, pretraining): requires_grad on all of them. */
    public void trainAll() {
        requireGrad(true);
    }

    /** Turns gradients on or off for every weight (the handles set_requires_grad returns are freed here). */
    public void requireGrad(boolean on) {
        try (PointerScope s = new PointerScope()) {
            for (Tensor t : namedTensors().values()) t.set_requires_grad(on);
        }
    }

    /**
     * Writes a Hugging Face folder transformers loads as-is: config.json, generation_config.json and model.safetensors (or
     * shards of at most {@code maxShardBytes} plus the index), in {@code dtype} (F32 or BF16). Built beside {@code dir},
     * then renamed into place.
     */
    public void save(java.nio.file.Path dir, dev.tune4j.hf.DType dtype, long maxShardBytes) throws java.io.IOException {
        save(dir, dtype, maxShardBytes, bytes -> {});
    }

    /** As above, reporting each tensor's stored bytes as it is converted (for progress bars). */
    public void save(java.nio.file.Path dir, dev.tune4j.hf.DType dtype, long maxShardBytes, java.util.function.LongConsumer onConverted) throws java.io.IOException {
        if (linears().values().stream().anyMatch(l -> l.quantized != null))
            throw new dev.tune4j.hf.UserError("this model holds quantized weights: save the original weights (or dequantize) instead");
        var tmp = dev.tune4j.hf.AtomicFiles.tempDirBeside(dir);
        try {
            var blobs = new LinkedHashMap<String, dev.tune4j.hf.TensorBlob>();
            for (var e : namedTensors().entrySet()) {
                blobs.put(e.getKey(), dev.tune4j.hf.TensorBlob.ofFloats(dtype, Tensors.toFloats(e.getValue()), Tensors.shape(e.getValue())));
                onConverted.accept(e.getValue().numel() * dtype.bytes);
            }
            dev.tune4j.hf.SafetensorsWriter.writeSharded(tmp, "model", blobs, maxShardBytes);
            var json = new com.fasterxml.jackson.databind.ObjectMapper().enable(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT);
            var cfg = new LinkedHashMap<>(config.toJson());
            cfg.put("torch_dtype", dtype == dev.tune4j.hf.DType.BF16 ? "bfloat16" : "float32");
            dev.tune4j.hf.AtomicFiles.write(tmp.resolve("config.json"), out -> out.write(json.writeValueAsBytes(cfg)));
            var gen = new LinkedHashMap<String, Object>();
            gen.put("_from_model_config", true);
            if (config.bosTokenId() != null) gen.put("bos_token_id", config.bosTokenId());
            if (!config.eosTokenIds().isEmpty()) gen.put("eos_token_id", config.eosTokenIds().size() == 1 ? config.eosTokenIds().getFirst() : config.eosTokenIds());
            gen.put("transformers_version", "4.44.2");
            dev.tune4j.hf.AtomicFiles.write(tmp.resolve("generation_config.json"), out -> out.write(json.writeValueAsBytes(gen)));
            dev.tune4j.hf.AtomicFiles.publishDir(tmp, dir);
        } finally {
            dev.tune4j.hf.AtomicFiles.deleteTree(tmp);
        }
    }

    private static void putLinear(Map<String, Tensor> m, String name, Linear l) {
        if (l.weight != null) m.put(name + ".weight", l.weight); // a quantized weight has no dense tensor
        if (l.bias != null) m.put(name + ".bias", l.bias);
    }

    @Override
    public void close() {
        try (PointerScope ignored = new PointerScope()) {
            for (DecoderLayer l : layers) l.close();
            norm.weight.close();
            if (lm_head != embed_tokens) lm_head.close();
            if (head16 != null) head16.close();
            embed_tokens.close();
            rope.close();
        }
    }
}
