package dev.tune4j.plan;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.ModelConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Peak training memory by component for one run: static state (weights, gradients, master copy, optimizer states,
 * adapters) plus what a micro-batch adds (activations, logits) plus the runtime. Bytes per parameter follow
 * ../shared/reference/memory-and-quantization.md §3.1; activations §3.4 adapted to what tune4j's graph keeps; logits §3.5.
 *
 * <p>Two runtimes: {@code GPU} is tune4j's CUDA build (bf16 activations, SDPA, CUDA context); {@code CPU} is this
 * machine's build (fp32 everything, host RAM, JVM + libtorch resident). The CPU constants marked "measured" come from
 * {@code tune4j bench train} and the forward probe described in docs/planner.md; BENCHMARKS.md records predicted vs measured.
 *
 * <p>Stages: a preference micro-batch of B pairs runs the trunk over 2B rows (TRL's layout: chosen then rejected; KTO: n
 * completions then n KL rows), and a DPO/KTO {@link Reference} adds its own part.
 */
public final class MemoryPlan {
    private MemoryPlan() {}

    public enum Method {
        FULL, LORA, QLORA;

        /** "full", "lora" or "qlora", as train's --method spells them. */
        public static Method parse(String name) {
            return switch (name) {
                case "full" -> FULL;
                case "lora" -> LORA;
                case "qlora" -> QLORA;
                case "dora", "qdora" -> throw new UserError("--method: expected full, lora or qlora, found '" + name
                        + "' (DoRA is an option of lora and qlora, PEFT's use_dora: give --method lora or qlora with --use-dora)");
                default -> throw new UserError("--method: expected full, lora or qlora, found '" + name + "'");
            };
        }
    }

    /** fp32: 4-byte weights and gradients; bf16-mixed: bf16 weights/gradients + fp32 master (ZeRO's 16 B); bf16: pure bf16. */
    public enum Precision {FP32, BF16_MIXED, BF16}

    /** adamw: fp32 m, v; adamw8bit: bitsandbytes blockwise 8-bit (2.03 B/param); offload: fp32 states in host memory. */
    public enum Optim {ADAMW, ADAMW8BIT, OFFLOAD}

    public enum Runtime {GPU, CPU}

    /** The training stage, as train's --stage spells it: sft/pt train on tokens; the preference stages on two rows per item. */
    public enum Stage {
        SFT, PT, DPO, KTO, ORPO, SIMPO;

        public static Stage parse(String name) {
            for (Stage s : values()) if (s.name().toLowerCase(java.util.Locale.ROOT).equals(name)) return s;
            throw new UserError("--stage: expected sft, pt, dpo, kto, orpo or simpo, found '" + name + "'");
        }

        /** Rows one item puts in a micro-batch: a pair is prompt+chosen and prompt+rejected; a KTO example adds its KL row. */
        public int rowsPerItem() {
            return this == SFT || this == PT ? 1 : 2;
        }

        /** DPO and KTO score the policy against a reference; ORPO and SimPO are reference-free. */
        public boolean hasReference() {
            return this == DPO || this == KTO;
        }
    }

    /** Where a DPO/KTO run's reference log-probs come from; each adds its own part to the plan. */
    public enum Reference {
        /** SFT, PT, ORPO, SimPO. */
        NONE,
        /** A no-grad forward each micro-batch before the policy's: LoRA's base with the adapter disabled. */
        PASS,
        /** The same pass through a frozen copy of the SFT adapter the run starts from (--adapter): + its fp32 weights. */
        ADAPTER,
        /** --precompute-ref-logps (always for full fine-tuning in tune4j): one pass over the data before training, 16 B per item kept. */
        STORED,
        /** A frozen copy of the whole model at the compute dtype (TRL's default for full DPO; tune4j stores log-probs instead). */
        COPY;

        /** Whether a no-grad reference forward runs before every policy forward. */
        public boolean passEachStep() {
            return this == PASS || this == ADAPTER || this == COPY;
        }

        /** The reference tune4j's train uses for this stage and method; {@code refCopy} plans TRL's full-model copy instead. */
        public static Reference of(Stage stage, Method method, boolean precompute, boolean fromAdapter, boolean refCopy) {
            if (!stage.hasReference()) {
                if (precompute || refCopy)
                    throw new UserError("stage " + stage.name().toLowerCase() + " has no reference: --precompute-ref-logps and --ref-copy apply to dpo and kto");
                return NONE;
            }
            if (refCopy && (method != Method.FULL || precompute))
                throw new UserError("--ref-copy plans a frozen copy of the full model: only for --method full without --precompute-ref-logps (LoRA's reference is the base with the adapter disabled)");
            if (refCopy) return COPY;
            if (precompute || method == Method.FULL) return STORED;
            return fromAdapter ? ADAPTER : PASS;
        }
    }

    /**
     * One run's shape.
     *
     * @param batch         micro-batch items: rows for sft/pt, pairs for dpo/orpo/simpo, examples for kto (twice the rows)
     * @param seq           tokens of the longest row (a preference batch is right-padded to it)
     * @param labelledShare fraction of tokens that are loss targets (completion-only SFT ≈ 0.5; pre-training 1.0)
     * @param lossChunk     rows of logits alive at once (tune4j's chunked loss); 0 = the full [tokens × V] HF path
     * @param items         pairs (KTO: examples) in the data: what stored reference log-probs take; 0 when unknown
     * @param dora          LoRA/QLoRA with use_dora: a magnitude per output row, and ‖W + s·B·A‖ formed per projection per pass
     */
    public record Setup(ModelConfig model, Method method, Precision precision, Optim optim, int batch, int seq,
                        boolean checkpointing, double labelledShare, int lossChunk, int r, List<String> targets,
                        boolean doubleQuant, Runtime runtime, Stage stage, Reference reference, long items, boolean dora) {
        public Setup {
            if (stage.hasReference() == (reference == Reference.NONE))
                throw new UserError("stage " + stage.name().toLowerCase() + " with reference " + reference.name().toLowerCase());
            if (dora && method == Method.FULL) throw new UserError("DoRA (use_dora) is an option of lora and qlora, not of full fine-tuning");
        }

        /** An SFT run without DoRA (the planner's original 13 inputs). */
        public Setup(ModelConfig model, Method method, Precision precision, Optim optim, int batch, int seq, boolean checkpointing,
                     double labelledShare, int lossChunk, int r, List<String> targets, boolean doubleQuant, Runtime runtime) {
            this(model, method, precision, optim, batch, seq, checkpointing, labelledShare, lossChunk, r, targets, doubleQuant, runtime, Stage.SFT, Reference.NONE, 0, false);
        }

        /** The same run at another stage; {@code reference} from {@link Reference#of}, {@code items} for stored log-probs. */
        public Setup withStage(Stage st, Reference ref, long n) {
            return new Setup(model, method, precision, optim, batch, seq, checkpointing, labelledShare, lossChunk, r, targets, doubleQuant, runtime, st, ref, n, dora);
        }

        public Setup withDora(boolean on) {
            return new Setup(model, method, precision, optim, batch, seq, checkpointing, labelledShare, lossChunk, r, targets, doubleQuant, runtime, stage, reference, items, on);
        }

        public Setup withBatch(int b) {
            return new Setup(model, method, precision, optim, b, seq, checkpointing, labelledShare, lossChunk, r, targets, doubleQuant, runtime, stage, reference, items, dora);
        }

        public Setup withRuntime(Runtime rt) {
            return new Setup(model, method, precision, optim, batch, seq, checkpointing, labelledShare, lossChunk, r, targets, doubleQuant, rt, stage, reference, items, dora);
        }

        public Setup withSeq(int s) {
            return new Setup(model, method, precision, optim, batch, s, checkpointing, labelledShare, lossChunk, r, targets, doubleQuant, runtime, stage, reference, items, dora);
        }

        /** Rows the trunk runs per micro-batch: 2B for a preference stage. */
        public long rows() {
            return (long) batch * stage.rowsPerItem();
        }

        /** Bytes of one activation element: the CPU build computes in fp32, the GPU build in bf16 unless fp32 is asked for. */
        int actBytes() {
            return runtime == Runtime.CPU || precision == Precision.FP32 ? 4 : 2;
        }

        long trainable() {
            if (method == Method.FULL) return ParamCount.total(model);
            return ParamCount.lora(model, r, targets) + (dora ? ParamCount.doraMagnitudes(model, targets) : 0);
        }
    }

    /** Components in bytes, in report order; {@code host} is what an offloaded optimizer keeps in host RAM (GPU runtime). */
    public record Estimate(Map<String, Long> parts, long peak, long host) {
        public long part(String name) {
            return parts.getOrDefault(name, 0L);
        }
    }

    /** 4-bit codes + one uint8 absmax per 64 + one fp32 per 64·256 with double quantization; fp32 absmax per 64 without. */
    public static final double NF4_DQ_BYTES = (4 + 8.0 / 64 + 32.0 / (64 * 256)) / 8, NF4_BYTES = (4 + 32.0 / 64) / 8;
    public static final double ADAMW8BIT_BYTES = 1 + 1 + 2 * 4.0 / 256;
    /** CUDA context + kernels resident on the device (reference §3.6: 0.5–1 GB). */
    public static final long CUDA_CONTEXT = 750_000_000L;
    /** JVM + libtorch + allocator slack resident before the model (measured: 244–428 MiB over the bench runs; docs/planner.md). */
    public static final long CPU_RUNTIME = 300L << 20;

    /**
     * A LoRA run that keeps its frozen decoder projections in bf16 (as a bf16 folder stores them, or for bf16 GEMMs): 2
     * bytes instead of 4 per projection parameter. Upcast per use (fp32 compute, with gradient checkpointing so one
     * layer's upcasts live at a time), one layer's projections exist in fp32 while it is recomputed and back-propagated;
     * with bf16 GEMMs ({@code bf16Gemms}) nothing is upcast, but a frozen head gets a bf16 copy for its GEMM.
     */
    public static Estimate withBf16Projections(Setup s, Estimate e, boolean bf16Gemms) {
        long linear = ParamCount.linear(s.model()), perLayer = linear / s.model().numLayers();
        var parts = new LinkedHashMap<String, Long>();
        e.parts().forEach((k, v) -> {
            if (k.equals("weights (frozen)")) {
                parts.put("weights (frozen; projections bf16)", v - 2 * linear);
                if (bf16Gemms) parts.put("bf16 copy of the head", 2L * s.model().vocabSize() * s.model().hiddenSize());
                else parts.put("upcast projections (one layer, fp32)", 4 * perLayer);
            } else parts.put(k, v);
        });
        return new Estimate(parts, parts.values().stream().mapToLong(Long::longValue).sum(), e.host());
    }

    /**
     * LoRA dropout (PEFT's lora_dropout): each adapted projection's A takes its own dropped copy of the input, which
     * backward keeps, so every adapted input is held once more in fp32 (measured: 1,047 MiB at p = 0.05 on the
     * Qwen2.5-0.5B shape, batch 4 × 256, all-linear; this term gives 960). Checkpointing keeps one layer's copies. On the
     * CPU, LoRA (not DoRA) keeps instead the flat indices of each mask's dropped elements (peft/LoraDropout): 4·p bytes an
     * adapted input element, beside the input the projections share as without dropout.
     */
    public static Estimate withLoraDropout(Setup s, Estimate e, double p) {
        if (p <= 0 || s.method() == Method.FULL) return e;
        boolean indices = s.runtime() == Runtime.CPU && !s.dora();
        long perToken = 0;
        for (String t : ParamCount.targets(s.targets())) perToken += ParamCount.shape(s.model(), t)[0]; // (in, out): the input width
        long elements = perToken * s.rows() * s.seq() * (s.checkpointing() ? 1 : s.model().numLayers());
        long bytes = indices ? Math.round(4 * p * elements) : 4L * elements;
        var parts = new LinkedHashMap<>(e.parts());
        parts.put(indices ? "lora dropout (dropped indices of each adapted input)" : "lora dropout (a dropped copy of each adapted input)", bytes);
        return new Estimate(parts, e.peak() + bytes, e.host());
    }

    /**
     * The allocator a CPU run's tensors come from, and what it keeps of what a step frees and reallocates, fitted to the
     * bench peaks: {@code slack}, the peak over the transients without checkpointing; {@code ckptLayers}, with
     * checkpointing, the layers' worth that recomputing and back-propagating one layer takes (recompute, grads, slack);
     * {@code dequantWorkspace}, QLoRA with checkpointing: dequantization's temporaries, bytes per parameter of one layer's
     * projections.
     */
    public enum Heap {
        /** glibc's malloc: its heaps keep a step's freed activations fragmented. */
        GLIBC(1.60, 11, 34, "allocator slack (glibc heaps)"),
        /** tcmalloc, which the launcher preloads where the system has it (decision 0012): size classes reuse what a step freed. */
        TCMALLOC(1.10, 5, 20, "allocator slack (tcmalloc caches)");

        final double slack, ckptLayers, dequantWorkspace;
        final String part;

        /** The heap of a process that allocates through tcmalloc or not (tensor/NativeHeap#cachingAllocator). */
        public static Heap of(boolean tcmalloc) {
            return tcmalloc ? TCMALLOC : GLIBC;
        }

        Heap(double slack, double ckptLayers, double dequantWorkspace, String part) {
            this.slack = slack;
            this.ckptLayers = ckptLayers;
            this.dequantWorkspace = dequantWorkspace;
            this.part = part;
        }
    }

    /**
     * The CPU bf16-matmul path (Compute#mixed; docs/decisions/0010) for LoRA and QLoRA without DoRA. Static: projections
     * bf16 (LoRA) or NF4 (QLoRA), a bf16 folder's embedding (and head) held once in bf16 ({@code bf16Embeddings}), else
     * fp32 plus a bf16 copy of the head. Per token and layer autograd keeps: the norms' fp32 inputs and attention's fp32
     * q, k, v and output, 4·(2h + 2q + 2kv) bytes; SwiGLU's gate, silu and up in bf16, 6·I; the adapted projections' bf16
     * inputs, shared by q/k/v and by gate/up (with dropout, each mask's dropped indices besides: 4·p bytes an input
     * element); LoRA's r-wide A outputs. Logits: 6 bytes per element of a chunk (the frozen head's backward by hand, train/Head: fp32 logits turned
     * into their gradient in place, and its bf16 cast). QLoRA without checkpointing keeps every layer's dequantized bf16
     * weights for the backward. Measured (docs/planner.md: bench train, SmolLM2-135M and Qwen2.5-0.5B shapes, LoRA and
     * QLoRA, with and without checkpointing, within ±10 %; single runs of the SmolLM2 shape scatter more): peaks are the
     * heap's slack × these transients without checkpointing; with it the layer inputs stay and one layer's recompute and
     * backward take the heap's ckptLayers layers' worth, plus its dequantWorkspace bytes per parameter of a layer for
     * QLoRA's dequantization.
     */
    public static Estimate forBf16Matmul(Setup s, Estimate e, double dropout, boolean bf16Embeddings, Heap heap) {
        if (s.method() == Method.FULL || s.dora() || s.runtime() != Runtime.CPU) return e;
        ModelConfig c = s.model();
        long h = c.hiddenSize(), q = (long) c.numHeads() * c.headDim(), kv = c.kvDim(), inter = c.intermediateSize(), layers = c.numLayers();
        long vh = (long) c.vocabSize() * h, linear = ParamCount.linear(c), tokens = s.rows() * s.seq();
        long lora = 0, inputs = 0, allInputs = 0;
        var shared = new java.util.HashSet<String>();
        for (String t : ParamCount.targets(s.targets())) {
            long in = ParamCount.shape(c, t)[0];
            lora += 2L * s.r();
            allInputs += in;
            String group = switch (t) { case "q_proj", "k_proj", "v_proj" -> "attn"; case "gate_proj", "up_proj" -> "mlp"; default -> t; };
            if (shared.add(group)) inputs += in;
        }
        lora += 2 * inputs + (dropout > 0 ? Math.round(4 * dropout * allInputs) : 0); // dropout: each mask's dropped indices (peft/LoraDropout)
        long perLayer = 4 * (2 * h + 2 * q + 2 * kv) + 6 * inter + lora;
        boolean qlora = s.method() == Method.QLORA;
        long rest = ParamCount.total(c) - linear - vh - (c.tieWordEmbeddings() ? 0 : vh); // norms and biases, fp32
        long weights = (long) (qlora ? linear * (s.doubleQuant() ? NF4_DQ_BYTES : NF4_BYTES) : 2 * linear) + 4 * rest
                + (bf16Embeddings ? 2 : 4) * vh * (c.tieWordEmbeddings() ? 1 : 2) + (bf16Embeddings ? 0 : 2 * vh);
        long rows = s.lossChunk() <= 0 ? tokens : Math.min(s.lossChunk(), Math.max(1, Math.round(tokens * s.labelledShare())));
        long logits = rows * c.vocabSize() * 6; // the frozen head's backward by hand (train/Head): fp32 log-probs + their bf16 cast
        var parts = new LinkedHashMap<String, Long>();
        parts.put(qlora ? "weights (NF4 projections, bf16 embedding)" : "weights (bf16)", weights);
        e.parts().forEach((k, v) -> {
            if (!(k.startsWith("weights") || k.startsWith("activations") || k.startsWith("logits") || k.startsWith("lora dropout")
                    || k.startsWith("dequantized") || k.startsWith("bf16 copy") || k.startsWith("upcast") || k.startsWith("runtime"))) parts.put(k, v);
        });
        if (!s.checkpointing()) {
            long act = tokens * (layers + 1) * perLayer, deq = qlora ? 2 * linear : 0;
            parts.put("activations (bf16 inside blocks)", act);
            parts.put("logits (labelled rows, chunked)", logits);
            if (qlora) parts.put("dequantized weights (bf16, kept for backward)", deq);
            parts.put(heap.part, (long) ((heap.slack - 1) * (act + logits + deq)));
        } else {
            parts.put("activations (layer inputs + one layer recomputed)", tokens * layers * h * 4 + 2 * tokens * perLayer);
            parts.put("logits (labelled rows, chunked)", logits);
            if (qlora) parts.put("dequantize workspace (one layer)", (long) (heap.dequantWorkspace * linear / layers));
            parts.put("backward working set and allocator slack", (long) ((heap.ckptLayers - 2) * tokens * perLayer + (heap.slack - 1) * logits));
        }
        parts.put("runtime (JVM + libtorch)", CPU_RUNTIME);
        return new Estimate(parts, parts.values().stream().mapToLong(Long::longValue).sum(), e.host());
    }

    /**
     * A run's estimate as its compute path has it (train and bench both ask here): the CPU bf16-matmul path's own
     * estimate for LoRA and QLoRA without DoRA ({@link #forBf16Matmul}); otherwise bf16-kept projections
     * ({@link #withBf16Projections}) and LoRA dropout ({@link #withLoraDropout}) adjust the general one.
     *
     * @param bf16Gemms       the projections' and head's GEMMs run in bf16 (Compute#mixed)
     * @param bf16Projections the frozen projections stay bf16
     * @param bf16Embeddings  the embedding (and head) are held in bf16
     * @param heap            the native allocator (the CPU bf16-matmul path's slack is fitted per allocator)
     */
    public static Estimate forCompute(Setup s, Estimate e, boolean bf16Gemms, boolean bf16Projections, boolean bf16Embeddings, double dropout, Heap heap) {
        if (bf16Gemms && s.runtime() == Runtime.CPU && s.method() != Method.FULL && !s.dora()) return forBf16Matmul(s, e, dropout, bf16Embeddings, heap);
        if (bf16Projections) e = withBf16Projections(s, e, bf16Gemms);
        return withLoraDropout(s, e, dropout);
    }

    /** PyTorch DDP's default bucket (bucket_cap_mb = 25): gradients travel in flat copies of at most this size. */
    public static final long BUCKET_BYTES = 25L << 20;

    /**
     * One rank's peak in a data-parallel run of {@code world} processes (the setup's batch is per process): ZeRO 1 and 2
     * keep 1/world of the optimizer state; the all-reduce adds up to two flat buckets in flight. ZeRO 2 drops the other
     * ranks' gradients after they are reduced, but the whole gradient exists during backward, so its peak term stays.
     */
    public static Estimate perRank(Setup s, int world, int zero) {
        Estimate e = estimate(s);
        if (world <= 1) return e;
        var parts = new LinkedHashMap<String, Long>();
        double states = switch (s.optim()) {
            case ADAMW -> s.precision() == Precision.BF16 && s.method() == Method.FULL ? 4 : 8;
            case ADAMW8BIT -> ADAMW8BIT_BYTES;
            case OFFLOAD -> s.runtime() == Runtime.CPU ? 8 : 0;
        };
        long stateBytes = (long) (s.trainable() * states), saved = zero >= 1 ? stateBytes - stateBytes / world : 0;
        String key = s.method() == Method.FULL ? "optimizer states" : "adapters (fp32 weights + grads + states)";
        e.parts().forEach((k, v) -> { // the partitioned part is named with its share
            if (k.equals(key) && saved > 0) parts.put(k + " (states 1/" + world + ", zero " + zero + ")", v - saved);
            else parts.put(k, v);
        });
        parts.put("all-reduce buckets (two in flight)", Math.min(2 * BUCKET_BYTES, 4 * s.trainable()));
        long peak = parts.values().stream().mapToLong(Long::longValue).sum();
        return new Estimate(parts, peak, e.host());
    }

    public static Estimate estimate(Setup s) {
        ModelConfig c = s.model();
        long n = ParamCount.total(c), linear = ParamCount.linear(c);
        var parts = new LinkedHashMap<String, Long>();
        long host = 0;
        double w = switch (s.runtime() == Runtime.CPU ? Precision.FP32 : s.precision()) {
            case FP32 -> 4;
            case BF16_MIXED, BF16 -> 2;
        };
        double states = switch (s.optim()) {
            case ADAMW -> s.precision() == Precision.BF16 && s.method() == Method.FULL ? 4 : 8; // pure bf16 keeps m, v in bf16
            case ADAMW8BIT -> ADAMW8BIT_BYTES;
            case OFFLOAD -> 0;
        };
        if (s.method() == Method.FULL) {
            parts.put("weights", (long) (n * w));
            parts.put("gradients", (long) (n * w));
            if (s.precision() == Precision.BF16_MIXED && s.runtime() == Runtime.GPU) parts.put("master weights (fp32)", 4 * n);
            parts.put("optimizer states", (long) (n * states));
            if (s.optim() == Optim.OFFLOAD) host = 8 * n;
        } else {
            long frozen = s.method() == Method.QLORA
                    ? (long) (linear * (s.doubleQuant() ? NF4_DQ_BYTES : NF4_BYTES) + (n - linear) * w)
                    : (long) (n * w);
            parts.put(s.method() == Method.QLORA ? "weights (NF4 linears, rest " + (w == 4 ? "fp32" : "bf16") + ")" : "weights (frozen)", frozen);
            long lora = s.trainable();
            parts.put("adapters (fp32 weights + grads + states)", (long) (lora * (8 + states)));
            if (s.optim() == Optim.OFFLOAD) host = 8 * lora;
            if (s.method() == Method.QLORA) parts.put("dequantized weight (one at a time)", (long) (ParamCount.largestLinear(c) * w));
            // DoRA forms B·A and W + s·B·A in fp32 (plus W cast to fp32 when it is not) for ‖·‖_row, one projection at a time
            if (s.dora()) parts.put("dora norm temporaries (one projection at a time)", ParamCount.largestLinear(c) * 4 * (w == 4 ? 2 : 3));
        }
        if (s.runtime() == Runtime.CPU && s.optim() == Optim.OFFLOAD) { // host memory is the device here
            parts.merge("optimizer states", host, Long::sum);
            host = 0;
        }
        switch (s.reference()) { // what the reference holds for the whole run; its pass's transient comes after the policy's parts
            case ADAPTER -> parts.put("reference adapter (frozen copy of the SFT adapter)", 4 * s.trainable());
            case COPY -> parts.put("reference model (frozen copy at the compute dtype)", (long) (n * w));
            case STORED -> parts.put("reference log-probs (stored, 16 B per item)", 16 * s.items());
            case NONE, PASS -> {}
        }
        long activations = s.rows() * s.seq() * activationBytesPerToken(s), logits = logitBytes(s);
        var what = new ArrayList<String>();
        if (s.stage().rowsPerItem() > 1) what.add(s.stage() == Stage.KTO ? "completion + KL rows" : "chosen + rejected rows");
        if (s.checkpointing()) what.add("layer inputs + one layer recomputed");
        parts.put(what.isEmpty() ? "activations" : "activations (" + String.join(", ", what) + ")", activations);
        parts.put(s.lossChunk() > 0 ? "logits (labelled rows, chunked)" : "logits (full, fp32 loss path)", logits);
        // the reference pass runs under no-grad before the policy's forward: one layer's working set and a logits chunk, freed
        // before the policy pass; a peak only where larger than the policy's activations and logits (it never is in practice)
        if (s.reference().passEachStep())
            parts.put("reference pass (no grad, before the policy pass; above activations)", Math.max(0, referencePassBytes(s) - activations - logits));
        // the optimizer's per-tensor temporaries appear after activations are freed: only a peak if they are larger
        long stepTemp = (long) (s.method() == Method.FULL ? ParamCount.largestTensor(c) : 0) * 2 * 4; // sqrt(v) and m / denom
        if (stepTemp > activations + logits) parts.put("optimizer step temporaries (above activations)", stepTemp - activations - logits);
        parts.put(s.runtime() == Runtime.CPU ? "runtime (JVM + libtorch)" : "runtime (CUDA context)", s.runtime() == Runtime.CPU ? CPU_RUNTIME : CUDA_CONTEXT);
        long peak = parts.values().stream().mapToLong(Long::longValue).sum();
        return new Estimate(parts, peak, host);
    }

    /**
     * Bytes one token adds. Per layer tune4j's graph keeps (elements): the two norms' inputs and outputs, q after RoPE,
     * k and v, the attention output and its reshaped copy, and SwiGLU's gate, up, silu and product: about
     * 10h + 2·k·d + 5·I (measured on CPU within 12 % for stories260K and SmolLM2-135M). A LoRA layer also keeps, per
     * adapted projection, its r-wide A output and its out-wide update; DoRA two more out-wide tensors (the base output and
     * B·A·x, which the magnitude's gradient needs). With checkpointing only each layer's input stays,
     * plus one layer recomputed. One more layer's worth is backward's working set; the embedding and final norm add 3h.
     */
    static long activationBytesPerToken(Setup s) {
        ModelConfig c = s.model();
        long h = c.hiddenSize(), kd = c.kvDim(), inter = c.intermediateSize(), layers = c.numLayers();
        long perLayer = 10 * h + 2 * kd + 5 * inter;
        // LoRA: A's r-wide output, and (GPU, DoRA) output-wide terms; on the CPU LoRA keeps no more than that (the scaling
        // is folded into B; dropout adds only its dropped indices, withLoraDropout: decision 0011), measured on stories260K: 432–459 MiB for 520
        boolean lean = s.runtime() == Runtime.CPU && !s.dora();
        if (s.method() != Method.FULL)
            for (String t : ParamCount.targets(s.targets())) perLayer += s.r() + (lean ? 0 : ParamCount.shape(c, t)[1] * (s.dora() ? 3 : 1));
        long stored = s.checkpointing() ? layers * h + perLayer : layers * perLayer;
        return (stored + perLayer + 3 * h) * s.actBytes();
    }

    /** The reference pass's transient: one layer's working set for every row, and a no-grad logits chunk (logits + log-softmax). */
    static long referencePassBytes(Setup s) {
        ModelConfig c = s.model();
        long perLayer = 10L * c.hiddenSize() + 2L * c.kvDim() + 5L * c.intermediateSize() + 3L * c.hiddenSize();
        long tokens = s.rows() * s.seq(), v = c.vocabSize();
        long logits = s.lossChunk() <= 0 ? tokens * v * (s.actBytes() + 8) : Math.min(s.lossChunk(), Math.max(1, Math.round(tokens * s.labelledShare()))) * v * 8;
        return tokens * perLayer * s.actBytes() + logits;
    }

    /**
     * Chunked (tune4j): at most lossChunk labelled rows of logits at a time, four fp32 [rows × V] buffers at the peak
     * (logits, log-softmax, and their gradients). Full (the HF path, §3.5): bf16 logits + fp32 copy + fp32 log-softmax +
     * fp32 gradient for every token, ≈ 14·V bytes per token.
     */
    static long logitBytes(Setup s) {
        long v = s.model().vocabSize(), tokens = s.rows() * s.seq();
        if (s.lossChunk() <= 0) return tokens * v * (s.actBytes() + 12);
        long rows = Math.min(s.lossChunk(), Math.max(1, Math.round(tokens * s.labelledShare())));
        return rows * v * 16;
    }

    /** The largest micro-batch (rows of {@code seq} tokens) whose peak fits in {@code bytes}; 0 if not even one. */
    public static int largestBatch(Setup s, long bytes) {
        if (estimate(s.withBatch(1)).peak() > bytes) return 0;
        int lo = 1, hi = 2;
        while (hi <= 1 << 16 && estimate(s.withBatch(hi)).peak() <= bytes) {
            lo = hi;
            hi *= 2;
        }
        while (hi - lo > 1) {
            int mid = (lo + hi) >>> 1;
            if (estimate(s.withBatch(mid)).peak() <= bytes) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    /** The longest sequence (multiple of 64, at most the model's context) whose peak at this batch fits; 0 if none. */
    public static int largestSeq(Setup s, long bytes) {
        int max = Math.max(64, s.model().maxPositionEmbeddings()), best = 0;
        int lo = 1, hi = max / 64;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (estimate(s.withSeq(mid * 64)).peak() <= bytes) {
                best = mid * 64;
                lo = mid + 1;
            } else hi = mid - 1;
        }
        return best;
    }

    /**
     * Devices needed when the static state is sharded ZeRO-3 style across n of them (activations, logits and the runtime
     * stay per device): the smallest n with static/n + rest ≤ device memory; −1 when even unlimited sharding cannot fit.
     */
    public static int devicesNeeded(Estimate e, long deviceBytes) {
        long perDevice = 0, shardable = 0;
        for (var p : e.parts().entrySet()) {
            String k = p.getKey();
            if (k.startsWith("activations") || k.startsWith("logits") || k.startsWith("runtime") || k.startsWith("dequantized") || k.startsWith("reference pass")
                    || k.startsWith("dora")) perDevice += p.getValue();
            else shardable += p.getValue();
        }
        if (perDevice >= deviceBytes) return -1;
        long room = deviceBytes - perDevice;
        return (int) Math.max(1, (shardable + room - 1) / room);
    }
}
