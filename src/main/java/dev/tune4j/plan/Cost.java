package dev.tune4j.plan;

import dev.tune4j.hf.ModelConfig;

/**
 * Training compute, time, money and storage. FLOPs per token (reference §4.1): full fine-tuning 6N + 12·L·h·T (PaLM's
 * model FLOPs, N without the embedding lookup but with a tied lm_head); LoRA and QLoRA skip the frozen weights' gradient
 * GEMM: 4N + 6·N_lora + 12·L·h·T. Gradient checkpointing adds one forward (2N + 4·L·h·T) of hardware work, which time
 * counts and MFU does not. Preference stages count the tokens of every row (both of a pair; KTO's KL rows); a DPO/KTO
 * reference adds one no-grad forward of them per step (6N + 2N for full fine-tuning with a reference copy), or, stored,
 * one such pass over the data before training.
 */
public final class Cost {
    private Cost() {}

    /** Typical model-FLOPs utilization of a well-tuned single-GPU fine-tuning run (override with --mfu). */
    public static final double DEFAULT_MFU = 0.35;
    /** Object storage, USD per GB-month (S3 standard; the figure seed 001 uses, and its arithmetic checks out). */
    public static final double STORAGE_USD_PER_GB_MONTH = 0.023;

    /** Matmul parameters: every weight except the embedding lookup (a tied lm_head's GEMM is real, so it stays). */
    public static long matmulParams(ModelConfig c) {
        return ParamCount.total(c) - (c.tieWordEmbeddings() ? 0 : (long) c.vocabSize() * c.hiddenSize());
    }

    /** Model FLOPs per trained token at sequence length {@code seq}. */
    public static double flopsPerToken(ModelConfig c, MemoryPlan.Method method, long loraParams, int seq) {
        double n = matmulParams(c), attention = 12.0 * c.numLayers() * c.hiddenSize() * seq;
        return method == MemoryPlan.Method.FULL ? 6 * n + attention : 4 * n + 6.0 * loraParams + attention;
    }

    /** Hardware FLOPs per token: model FLOPs plus the recomputed forward under checkpointing. */
    public static double hardwareFlopsPerToken(ModelConfig c, MemoryPlan.Method method, long loraParams, int seq, boolean checkpointing) {
        double f = flopsPerToken(c, method, loraParams, seq);
        return checkpointing ? f + forwardFlopsPerToken(c, seq) : f;
    }

    /** FLOPs per token of one no-grad forward, a reference pass: 2N + 4·L·h·T. */
    public static double forwardFlopsPerToken(ModelConfig c, int seq) {
        return 2.0 * matmulParams(c) + 4.0 * c.numLayers() * c.hiddenSize() * seq;
    }

    /** Model FLOPs per token of one step at the setup's stage: training, plus the reference's forward when it runs each step. */
    public static double stepFlopsPerToken(MemoryPlan.Setup s) {
        return flopsPerToken(s.model(), s.method(), s.trainable(), s.seq()) + (s.reference().passEachStep() ? forwardFlopsPerToken(s.model(), s.seq()) : 0);
    }

    /** Hardware FLOPs per token of one step at the setup's stage: plus the recomputed forward under checkpointing. */
    public static double stepHardwareFlopsPerToken(MemoryPlan.Setup s) {
        return stepFlopsPerToken(s) + (s.checkpointing() ? forwardFlopsPerToken(s.model(), s.seq()) : 0);
    }

    /** Hardware FLOPs of a run over {@code tokens} per epoch (every row's): its steps, plus a stored reference's one-off pass. */
    public static double runFlops(MemoryPlan.Setup s, double tokens, double epochs) {
        double oneOff = s.reference() == MemoryPlan.Reference.STORED ? tokens * forwardFlopsPerToken(s.model(), s.seq()) : 0;
        return tokens * epochs * stepHardwareFlopsPerToken(s) + oneOff;
    }

    /** Hours for {@code tokens} trained tokens on {@code devices} devices of {@code tflops} peak at utilization {@code mfu}. */
    public static double hours(double tokens, double flopsPerToken, double tflops, int devices, double mfu) {
        return hours(tokens * flopsPerToken, tflops, devices, mfu);
    }

    /** Hours for {@code flops} of work on {@code devices} devices of {@code tflops} peak at utilization {@code mfu}. */
    public static double hours(double flops, double tflops, int devices, double mfu) {
        return flops / (tflops * 1e12 * devices * mfu) / 3600;
    }

    /** Bytes of one saved checkpoint: full = weights in bf16 (+ fp32 m, v and master when resumable); LoRA = fp32 adapter (+ its states). */
    public static long checkpointBytes(ModelConfig c, MemoryPlan.Method method, long loraParams, boolean withOptimizer) {
        long n = method == MemoryPlan.Method.FULL ? ParamCount.total(c) : loraParams;
        long weights = method == MemoryPlan.Method.FULL ? 2 * n : 4 * n;
        return weights + (withOptimizer ? (method == MemoryPlan.Method.FULL ? 12 * n : 8 * n) : 0);
    }

    /**
     * Storage for k deployable variants: k full bf16 copies, or one bf16 base plus k fp32 adapters (QLoRA keeps the
     * bf16 base too: the 4-bit copy is for training, the adapter is applied to the original weights when merging).
     */
    public static long variantsBytes(ModelConfig c, MemoryPlan.Method method, long loraParams, int k) {
        long base = 2 * ParamCount.total(c);
        return method == MemoryPlan.Method.FULL ? k * base : base + k * 4 * loraParams;
    }
}
