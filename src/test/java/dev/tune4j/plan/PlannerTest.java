package dev.tune4j.plan;

import dev.tune4j.plan.MemoryPlan.Method;
import dev.tune4j.plan.MemoryPlan.Optim;
import dev.tune4j.plan.MemoryPlan.Precision;
import dev.tune4j.plan.MemoryPlan.Reference;
import dev.tune4j.plan.MemoryPlan.Runtime;
import dev.tune4j.plan.MemoryPlan.Setup;
import dev.tune4j.plan.MemoryPlan.Stage;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.tune4j.plan.MemoryPlan.Heap.GLIBC;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/** The planner's formulas against the reference's worked numbers, and every decision rule's branches. */
class PlannerTest {
    static Setup gpu(String model, Method m, Precision p, Optim o, int b, int t, boolean ckpt, int chunk) {
        return new Setup(Catalog.get(model), m, p, o, b, t, ckpt, 0.5, chunk, 16, List.of("all-linear"), true, Runtime.GPU);
    }

    static double gb(long bytes) {
        return bytes / 1e9;
    }

    @Test
    void perRankMemoryPartitionsOptimizerStateUnderZero() {
        var s = gpu("llama-3.1-8b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024);
        long n = ParamCount.total(Catalog.get("llama-3.1-8b"));
        var alone = MemoryPlan.estimate(s);
        assertThat(MemoryPlan.perRank(s, 1, 1)).isEqualTo(alone);
        var replicated = MemoryPlan.perRank(s, 8, 0);
        assertThat(replicated.peak() - alone.peak()).isEqualTo(2 * MemoryPlan.BUCKET_BYTES); // every rank holds everything, plus two buckets in flight
        var zero1 = MemoryPlan.perRank(s, 8, 1);
        assertThat(zero1.part("optimizer states (states 1/8, zero 1)")).isEqualTo(8 * n - (8 * n - 8 * n / 8));
        assertThat(alone.peak() - zero1.peak()).isEqualTo(8 * n - 8 * n / 8 - 2 * MemoryPlan.BUCKET_BYTES);
        // zero 2 drops the other ranks' gradients after the reduction; the whole gradient still exists in backward
        assertThat(MemoryPlan.perRank(s, 8, 2).part("gradients")).isEqualTo(alone.part("gradients"));
        // LoRA: the adapters' state is what is partitioned; the buckets are as small as the adapter's gradients
        var lora = gpu("llama-3.1-8b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024);
        var loraRank = MemoryPlan.perRank(lora, 2, 0);
        assertThat(loraRank.part("all-reduce buckets (two in flight)")).isEqualTo(2 * MemoryPlan.BUCKET_BYTES);
    }

    @Test
    void staticMemoryFollowsBytesPerParameter() {
        var c = Catalog.get("llama-2-7b");
        long n = ParamCount.total(c);
        var full = MemoryPlan.estimate(gpu("llama-2-7b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024));
        assertThat(full.part("weights") + full.part("gradients") + full.part("master weights (fp32)") + full.part("optimizer states")).isEqualTo(16 * n);
        var fp32 = MemoryPlan.estimate(gpu("llama-2-7b", Method.FULL, Precision.FP32, Optim.ADAMW, 1, 2048, true, 1024));
        assertThat(fp32.part("weights") + fp32.part("gradients") + fp32.part("optimizer states")).isEqualTo(16 * n);
        var pure = MemoryPlan.estimate(gpu("llama-2-7b", Method.FULL, Precision.BF16, Optim.ADAMW, 1, 2048, true, 1024));
        assertThat(pure.part("weights") + pure.part("gradients") + pure.part("optimizer states")).isEqualTo(8 * n);
        var eight = MemoryPlan.estimate(gpu("llama-2-7b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW8BIT, 1, 2048, true, 1024));
        assertThat((double) eight.part("optimizer states") / n).isCloseTo(2.03125, within(1e-4));
        var off = MemoryPlan.estimate(gpu("llama-2-7b", Method.FULL, Precision.BF16_MIXED, Optim.OFFLOAD, 1, 2048, true, 1024));
        assertThat(off.part("optimizer states")).isZero();
        assertThat(off.host()).isEqualTo(8 * n);
        // reference §3.6: Llama-2-7B LoRA base 13.48 GB + adapters 0.64 GB; QLoRA 3.34 NF4 + bf16 embed/head ≈ 3.87
        var lora = MemoryPlan.estimate(gpu("llama-2-7b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024));
        assertThat(gb(lora.part("weights (frozen)"))).isCloseTo(13.48, within(0.01));
        assertThat(gb(lora.part("adapters (fp32 weights + grads + states)"))).isCloseTo(0.64, within(0.01));
        var q = MemoryPlan.estimate(gpu("llama-2-7b", Method.QLORA, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024));
        assertThat(gb(q.part("weights (NF4 linears, rest bf16)"))).isCloseTo(3.34 + 0.52, within(0.02));
        assertThat(MemoryPlan.NF4_DQ_BYTES * 8).isCloseTo(4.127, within(0.001));
        assertThat(gb((long) (ParamCount.linear(Catalog.get("llama-2-70b")) * MemoryPlan.NF4_DQ_BYTES))).isCloseTo(35.31, within(0.01));
    }

    @Test
    void activationsAndLogitsScaleAsDocumented() {
        var s = gpu("qwen2.5-0.5b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, false, 1024);
        var a = MemoryPlan.estimate(s);
        var b2 = MemoryPlan.estimate(s.withBatch(8));
        assertThat(b2.part("activations")).isEqualTo(2 * a.part("activations"));
        var ckpt = MemoryPlan.estimate(gpu("qwen2.5-0.5b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, true, 1024));
        assertThat(ckpt.part("activations (layer inputs + one layer recomputed)")).isLessThan(a.part("activations") / 5);
        // full HF logits path ≈ 14·V bytes per token: Qwen (V=151,936) at 4096 tokens is ≈ 8.7 GB; the chunked path holds 1024 rows
        var full = MemoryPlan.estimate(gpu("qwen2.5-0.5b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, false, 0));
        assertThat(gb(full.part("logits (full, fp32 loss path)"))).isCloseTo(4096L * 151_936 * 14 / 1e9, within(0.01));
        assertThat(a.part("logits (labelled rows, chunked)")).isEqualTo(1024L * 151_936 * 16);
        assertThat(MemoryPlan.estimate(s.withSeq(2048)).peak()).isGreaterThan(a.peak());
    }

    /** LoRA dropout and bf16 projections, as `train` adjusts its estimate (measured on the Qwen2.5-0.5B shape: decision 0008). */
    @Test
    void loraDropoutAndBf16ProjectionsAdjustTheEstimate() {
        var s = gpu("qwen2.5-0.5b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, false, 1024).withRuntime(Runtime.CPU);
        var e = MemoryPlan.estimate(s);
        // on the CPU LoRA keeps each mask's dropped indices (4 bytes each) beside the shared inputs a run without dropout keeps too
        assertThat(MemoryPlan.withLoraDropout(s, e, 0.05).peak() - e.peak()).isEqualTo(Math.round(4 * 0.05 * (6 * 896 + 4864) * 4 * 256 * 24));
        // on a GPU (libtorch's dropout), and for DoRA: every adapted input (q, k, v, o, gate, up: 896 wide; down: 4,864)
        // once more in fp32, in each of the 24 layers
        var onGpu = gpu("qwen2.5-0.5b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, false, 1024);
        assertThat(MemoryPlan.withLoraDropout(onGpu, MemoryPlan.estimate(onGpu), 0.05).peak() - MemoryPlan.estimate(onGpu).peak())
                .isEqualTo(4L * (6 * 896 + 4864) * 4 * 256 * 24);
        var dora = s.withDora(true);
        var dropped = MemoryPlan.withLoraDropout(dora, MemoryPlan.estimate(dora), 0.05);
        assertThat(dropped.peak() - MemoryPlan.estimate(dora).peak()).isEqualTo(4L * (6 * 896 + 4864) * 4 * 256 * 24);
        assertThat(MemoryPlan.withLoraDropout(s, e, 0).peak()).isEqualTo(e.peak());
        var ckpt = gpu("qwen2.5-0.5b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, true, 1024);
        assertThat(MemoryPlan.withLoraDropout(ckpt, MemoryPlan.estimate(ckpt), 0.05).peak() - MemoryPlan.estimate(ckpt).peak())
                .as("checkpointing keeps one layer's copies").isEqualTo(4L * (6 * 896 + 4864) * 4 * 256);
        var full = gpu("qwen2.5-0.5b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, false, 1024);
        assertThat(MemoryPlan.withLoraDropout(full, MemoryPlan.estimate(full), 0.1).peak()).isEqualTo(MemoryPlan.estimate(full).peak());
        long linear = ParamCount.linear(s.model());
        var upcast = MemoryPlan.withBf16Projections(s, e, false);
        assertThat(upcast.peak()).isEqualTo(e.peak() - 2 * linear + 4 * linear / 24);
        var gemms = MemoryPlan.withBf16Projections(s, e, true);
        assertThat(gemms.peak()).isEqualTo(e.peak() - 2 * linear + 2L * 151_936 * 896);
        assertThat(gemms.parts()).containsKey("bf16 copy of the head").doesNotContainKey("upcast projections (one layer, fp32)");
    }

    /**
     * The CPU bf16-matmul path against the bench peaks it was fitted to, per allocator (BENCHMARKS.md, 2026-12-04: batch
     * 4 × 256, r = 16 all-linear, dropout 0.05, loss chunk 128, half of each row labelled; MiB; glibc's with the masks
     * redrawn, tcmalloc's with the dropped indices kept and the draw's buffers reused, decisions 0011 and 0012): within
     * ±10 %, and the terms move as the formula says.
     */
    @Test
    void cpuBf16MatmulPathMatchesTheMeasuredPeaks() {
        record Run(MemoryPlan.Heap heap, String shape, Method m, boolean ckpt, double measured) {}
        var glibc = GLIBC;
        var tc = MemoryPlan.Heap.TCMALLOC;
        var runs = List.of(new Run(glibc, "smollm2-135m", Method.LORA, false, 1977), new Run(glibc, "smollm2-135m", Method.LORA, true, 1120),
                new Run(glibc, "smollm2-135m", Method.QLORA, false, 2109), new Run(glibc, "smollm2-135m", Method.QLORA, true, 1044),
                new Run(glibc, "qwen2.5-0.5b", Method.LORA, false, 3810), new Run(glibc, "qwen2.5-0.5b", Method.LORA, true, 2179),
                new Run(glibc, "qwen2.5-0.5b", Method.QLORA, false, 4491), new Run(glibc, "qwen2.5-0.5b", Method.QLORA, true, 2169),
                new Run(tc, "smollm2-135m", Method.LORA, false, 1492.5), new Run(tc, "smollm2-135m", Method.LORA, true, 826.9),
                new Run(tc, "smollm2-135m", Method.QLORA, false, 1652.7), new Run(tc, "smollm2-135m", Method.QLORA, true, 810.1),
                new Run(tc, "qwen2.5-0.5b", Method.LORA, false, 2986.5), new Run(tc, "qwen2.5-0.5b", Method.LORA, true, 1792.4),
                new Run(tc, "qwen2.5-0.5b", Method.QLORA, false, 3596.7), new Run(tc, "qwen2.5-0.5b", Method.QLORA, true, 1745.3));
        for (Run r : runs) {
            var s = gpu(r.shape, r.m, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, r.ckpt, 128).withRuntime(Runtime.CPU);
            var e = MemoryPlan.forBf16Matmul(s, MemoryPlan.estimate(s), 0.05, true, r.heap);
            assertThat(e.peak() / 1048576.0 / r.measured - 1).as(r.toString()).isBetween(-0.10, 0.10);
            if (!r.ckpt) assertThat(e.parts()).containsKey(r.heap == tc ? "allocator slack (tcmalloc caches)" : "allocator slack (glibc heaps)");
        }
        var s = gpu("qwen2.5-0.5b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, false, 128).withRuntime(Runtime.CPU);
        var e = MemoryPlan.estimate(s);
        var with = MemoryPlan.forBf16Matmul(s, e, 0.05, true, GLIBC);
        // tied: an fp32 embedding plus a bf16 head copy (6 bytes a weight) instead of one bf16 matrix (2)
        assertThat(MemoryPlan.forBf16Matmul(s, e, 0.05, false, GLIBC).part("weights (bf16)") - with.part("weights (bf16)")).isEqualTo(4L * 151_936 * 896);
        // dropout keeps only each mask's dropped indices (peft/LoraDropout): 4·p bytes per adapted input element
        long inputs = 6 * 896 + 4864; // q, k, v, o, gate, up; down
        assertThat(with.part("activations (bf16 inside blocks)") - MemoryPlan.forBf16Matmul(s, e, 0, true, GLIBC).part("activations (bf16 inside blocks)"))
                .isEqualTo(4L * 256 * 25 * Math.round(4 * 0.05 * inputs));
        assertThat(with.parts()).containsKey("allocator slack (glibc heaps)").doesNotContainKey("bf16 copy of the head");
        var ckpt = gpu("qwen2.5-0.5b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 4, 256, true, 128).withRuntime(Runtime.CPU);
        assertThat(MemoryPlan.forBf16Matmul(ckpt, MemoryPlan.estimate(ckpt), 0.05, true, GLIBC).peak()).isLessThan(with.peak() * 6 / 10);
        var dora = s.withDora(true); // DoRA keeps its fp32 delta: the path's formula does not apply
        assertThat(MemoryPlan.forBf16Matmul(dora, MemoryPlan.estimate(dora), 0.05, true, GLIBC)).isEqualTo(MemoryPlan.estimate(dora));
    }

    static long sum(MemoryPlan.Estimate e, String prefix) {
        return e.parts().entrySet().stream().filter(p -> p.getKey().startsWith(prefix)).mapToLong(java.util.Map.Entry::getValue).sum();
    }

    @Test
    void preferenceStagesRunTwoRowsPerPairAndNameTheirReference() {
        var sft = gpu("qwen2.5-0.5b", Method.LORA, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, false, 1024);
        var dpo = MemoryPlan.estimate(sft.withStage(Stage.DPO, Reference.PASS, 10_000));
        // B pairs = 2B rows: more activation memory than SFT at B, the same as SFT at 2B rows of the same length
        assertThat(dpo.part("activations (chosen + rejected rows)")).isGreaterThan(MemoryPlan.estimate(sft).part("activations"))
                .isEqualTo(MemoryPlan.estimate(sft.withBatch(8)).part("activations"));
        assertThat(sum(MemoryPlan.estimate(sft.withStage(Stage.KTO, Reference.PASS, 0)), "activations")).isEqualTo(dpo.part("activations (chosen + rejected rows)"));
        // the reference pass runs under no-grad before the policy's forward: named, and no more than the policy's own activations
        assertThat(dpo.parts()).containsEntry("reference pass (no grad, before the policy pass; above activations)", 0L);
        assertThat(MemoryPlan.referencePassBytes(sft.withStage(Stage.DPO, Reference.PASS, 0))).isPositive()
                .isLessThan(dpo.part("activations (chosen + rejected rows)") + dpo.part("logits (labelled rows, chunked)"));
        // ORPO and SimPO are reference-free; precomputed log-probs replace the pass by 16 B per pair
        for (Stage st : List.of(Stage.ORPO, Stage.SIMPO)) {
            var e = MemoryPlan.estimate(sft.withStage(st, Reference.of(st, Method.LORA, false, false, false), 10_000));
            assertThat(e.parts().keySet()).noneMatch(k -> k.startsWith("reference"));
            assertThat(e.peak()).isEqualTo(dpo.peak());
        }
        var stored = MemoryPlan.estimate(sft.withStage(Stage.DPO, Reference.of(Stage.DPO, Method.LORA, true, false, false), 10_000));
        assertThat(stored.parts()).doesNotContainKey("reference pass (no grad, before the policy pass; above activations)")
                .containsEntry("reference log-probs (stored, 16 B per item)", 160_000L);
        // from an SFT adapter: a frozen copy of its fp32 weights, no gradients or states
        var fromAdapter = MemoryPlan.estimate(sft.withStage(Stage.DPO, Reference.of(Stage.DPO, Method.LORA, false, true, false), 0));
        assertThat(fromAdapter.part("reference adapter (frozen copy of the SFT adapter)")).isEqualTo(4 * ParamCount.lora(Catalog.get("qwen2.5-0.5b"), 16, List.of("all-linear")));
        // full fine-tuning stores log-probs in tune4j; a frozen reference copy (TRL's default) adds the weights at the compute dtype
        var full = gpu("qwen2.5-0.5b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, true, 1024);
        assertThat(Reference.of(Stage.DPO, Method.FULL, false, false, false)).isEqualTo(Reference.STORED);
        var copy = MemoryPlan.estimate(full.withStage(Stage.DPO, Reference.of(Stage.DPO, Method.FULL, false, false, true), 0));
        var noCopy = MemoryPlan.estimate(full.withStage(Stage.DPO, Reference.STORED, 0));
        assertThat(copy.part("reference model (frozen copy at the compute dtype)")).isEqualTo(2 * ParamCount.total(Catalog.get("qwen2.5-0.5b")));
        assertThat(copy.peak() - noCopy.peak()).isEqualTo(2 * ParamCount.total(Catalog.get("qwen2.5-0.5b")));
        assertThatThrownBy(() -> Reference.of(Stage.DPO, Method.LORA, false, false, true)).hasMessageContaining("--ref-copy");
        assertThatThrownBy(() -> Reference.of(Stage.ORPO, Method.LORA, true, false, false)).hasMessageContaining("stage orpo has no reference");
        assertThatThrownBy(() -> Stage.parse("ppo")).hasMessageContaining("--stage: expected sft, pt, dpo, kto, orpo or simpo, found 'ppo'");
        assertThatThrownBy(() -> sft.withStage(Stage.DPO, Reference.NONE, 0)).hasMessageContaining("stage dpo with reference none");
        // the largest batch is counted in pairs: at most half the SFT rows
        long mem = Gpus.get("rtx4090").memoryBytes();
        assertThat(MemoryPlan.largestBatch(sft.withStage(Stage.DPO, Reference.PASS, 0), mem)).isBetween(1, MemoryPlan.largestBatch(sft, mem) / 2 + 1);
    }

    @Test
    void dpoComputeAddsTheReferenceForwardOrAOneOffPass() {
        var q = Catalog.get("qwen2.5-0.5b");
        var sft = gpu("qwen2.5-0.5b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, false, 1024);
        double n = Cost.matmulParams(q), attnFwd = 4.0 * q.numLayers() * q.hiddenSize() * 1024;
        // full DPO with a reference copy: 6N + 2N (plus attention) per token of both rows
        var copy = sft.withStage(Stage.DPO, Reference.COPY, 0);
        assertThat(Cost.stepFlopsPerToken(copy)).isCloseTo(8 * n + 4 * attnFwd, within(1.0));
        assertThat(Cost.stepFlopsPerToken(sft.withStage(Stage.ORPO, Reference.NONE, 0))).isEqualTo(Cost.flopsPerToken(q, Method.FULL, 0, 1024));
        // stored: the forward runs once over the data instead of every epoch
        var stored = sft.withStage(Stage.DPO, Reference.STORED, 0);
        double tokens = 1e6;
        assertThat(Cost.runFlops(stored, tokens, 3)).isCloseTo(3 * tokens * Cost.flopsPerToken(q, Method.FULL, 0, 1024) + tokens * (2 * n + attnFwd), within(1e6));
        assertThat(Cost.runFlops(copy, tokens, 3)).isCloseTo(3 * tokens * (8 * n + 4 * attnFwd), within(1e6));
        // checkpointing's recompute counts once per step, not for the reference
        assertThat(Cost.stepHardwareFlopsPerToken(new Setup(q, Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 4, 1024, true, 0.5, 1024, 16, List.of("all-linear"), true, Runtime.GPU)
                .withStage(Stage.DPO, Reference.COPY, 0))).isCloseTo(8 * n + 4 * attnFwd + 2 * n + attnFwd, within(1.0));
    }

    @Test
    void fitSearchFindsTheLargestBatchAndSequence() {
        var s = gpu("llama-3.1-8b", Method.QLORA, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024);
        long mem = Gpus.get("rtx4090").memoryBytes();
        int b = MemoryPlan.largestBatch(s, mem);
        assertThat(b).isPositive();
        assertThat(MemoryPlan.estimate(s.withBatch(b)).peak()).isLessThanOrEqualTo(mem);
        assertThat(MemoryPlan.estimate(s.withBatch(b + 1)).peak()).isGreaterThan(mem);
        int t = MemoryPlan.largestSeq(s, mem);
        assertThat(MemoryPlan.estimate(s.withSeq(t)).peak()).isLessThanOrEqualTo(mem);
        assertThat(t == 131_072 || MemoryPlan.estimate(s.withSeq(t + 64)).peak() > mem).isTrue();
        // 70B does not fit one 24 GB card with QLoRA; full fine-tuning of 7B needs several A100-80GB
        assertThat(MemoryPlan.largestBatch(gpu("llama-2-70b", Method.QLORA, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024), mem)).isZero();
        var full7 = MemoryPlan.estimate(gpu("llama-2-7b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024));
        assertThat(MemoryPlan.devicesNeeded(full7, Gpus.get("a100-80gb").memoryBytes())).isEqualTo(2);
        assertThat(MemoryPlan.devicesNeeded(full7, Gpus.get("h200").memoryBytes())).isEqualTo(1);
    }

    @Test
    void flopsMatchTheReferenceTable() {
        var l7 = Catalog.get("llama-2-7b");
        assertThat(Cost.flopsPerToken(l7, Method.FULL, 0, 2048) / 1e9).isCloseTo(42.86, within(0.01));
        assertThat(Cost.flopsPerToken(l7, Method.LORA, ParamCount.lora(l7, 16, List.of("all-linear")), 2048) / 1e9).isCloseTo(29.89, within(0.01));
        var q = Catalog.get("qwen2.5-0.5b");
        assertThat(Cost.flopsPerToken(q, Method.FULL, 0, 2048) / 1e9).isCloseTo(3.49, within(0.01));
        assertThat(Cost.flopsPerToken(Catalog.get("llama-3.1-8b"), Method.FULL, 0, 2048) / 1e9).isCloseTo(48.25, within(0.01));
        // checkpointing adds one forward of hardware work
        assertThat(Cost.hardwareFlopsPerToken(l7, Method.FULL, 0, 2048, true) - Cost.flopsPerToken(l7, Method.FULL, 0, 2048))
                .isCloseTo(2.0 * Cost.matmulParams(l7) + 4.0 * 32 * 4096 * 2048, within(1.0));
        // 1e9 tokens at 6N on one H100 at 100 % = 6.74e9·6·1e9 / 989.4e12 s
        assertThat(Cost.hours(1e9, 6e9, 989.4, 1, 1.0)).isCloseTo(6e18 / 989.4e12 / 3600, within(1e-9));
    }

    @Test
    void storageForCheckpointsAndVariants() {
        var l7 = Catalog.get("llama-2-7b");
        long n = ParamCount.total(l7), lora = ParamCount.lora(l7, 16, List.of("all-linear"));
        assertThat(Cost.checkpointBytes(l7, Method.FULL, 0, false)).isEqualTo(2 * n);
        assertThat(Cost.checkpointBytes(l7, Method.LORA, lora, false)).isEqualTo(4 * lora);
        assertThat(Cost.variantsBytes(l7, Method.FULL, lora, 10)).isEqualTo(20 * n);
        assertThat(Cost.variantsBytes(l7, Method.LORA, lora, 10)).isEqualTo(2 * n + 40 * lora);
        // seed 001's storage arithmetic: 280 GB at $0.023/GB-month = $6.44
        assertThat(280 * Cost.STORAGE_USD_PER_GB_MONTH).isCloseTo(6.44, within(1e-9));
    }

    @Test
    void seed003FineTuneQuestionsTakeEveryBranch() {
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(true, null, null, null, null, null, null)).answer()).isEqualTo("in-context learning");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, true, null, null, null, null, null)).answer()).isEqualTo("RAG");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, false, 5000, true, true, true, null)).answer()).isEqualTo("RAG");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, false, 50, null, null, null, null)).answer()).isEqualTo("in-context learning");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, false, 300, null, null, null, null)).answer()).isEqualTo("in-context learning or RAG");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, false, 5000, false, null, null, null)).answer()).isEqualTo("RAG + in-context learning");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, false, 5000, true, false, null, null)).answer()).isEqualTo("improve prompts first");
        assertThat(Rules.fineTuneAtAll(new Rules.Situation(false, false, 5000, true, true, null, false)).answer()).isEqualTo("define a metric first");
        var yes = Rules.fineTuneAtAll(new Rules.Situation(false, false, 5000, true, true, false, true));
        assertThat(yes.answer()).isEqualTo("fine-tune");
        assertThat(yes.reasons()).allSatisfy(r -> assertThat(r.source()).startsWith("seed"));
        var unknown = Rules.fineTuneAtAll(new Rules.Situation(false, false, null, null, null, null, null));
        assertThat(unknown.answer()).isEqualTo("unknown");
        assertThat(unknown.reasons().getLast().text()).contains("--examples");
    }

    @Test
    void seed000PathsByDataVolume() {
        assertThat(Rules.path(true, null, null, null, null).answer()).isEqualTo("no fine-tuning");
        assertThat(Rules.path(false, 200_000_000_000L, null, false, false).answer()).isEqualTo("from scratch");
        assertThat(Rules.path(false, 5_000_000_000L, null, false, false).answer()).isEqualTo("continued pre-training");
        assertThat(Rules.path(false, 50_000_000_000L, null, false, false).reasons().getFirst().source()).isEqualTo("tune4j");
        assertThat(Rules.path(false, 100_000_000L, null, null, null).answer()).isEqualTo("RAG or LoRA on pairs");
        assertThat(Rules.path(false, null, 50_000L, false, false).answer()).isEqualTo("full SFT or LoRA");
        assertThat(Rules.path(false, null, 50_000L, true, false).answer()).isEqualTo("LoRA / QLoRA");
        assertThat(Rules.path(false, null, 50_000L, false, true).answer()).isEqualTo("LoRA");
        assertThat(Rules.path(false, null, 2_000_000L, false, false).answer()).isEqualTo("full SFT");
        assertThat(Rules.path(false, null, 5_000L, null, null).answer()).isEqualTo("LoRA / QLoRA");
        assertThat(Rules.path(false, null, 50L, null, null).answer()).isEqualTo("in-context learning");
        assertThat(Rules.path(null, null, null, null, null).answer()).isEqualTo("unknown");
    }

    @Test
    void seed002TiersGoalsAndDataSizes() {
        assertThat(Rules.vramTier(6).answer()).startsWith("API");
        assertThat(Rules.vramTier(12).answer()).isEqualTo("QLoRA on 7–8B models");
        var t24 = Rules.vramTier(24);
        assertThat(t24.answer()).isEqualTo("LoRA or QLoRA on any model");
        assertThat(t24.reasons().getLast().text()).contains("is wrong").contains("35.3 GB");
        assertThat(Rules.vramTier(80).reasons().getLast().text()).contains("QLoRA llama-2-70b").doesNotContain("wrong");
        assertThat(Rules.largestFitting(Method.QLORA, 16_000_000_000L)).isNotEqualTo("none");
        assertThat(Rules.goal("response-quality").answer()).isEqualTo("SFT + DPO");
        assertThat(Rules.goal("reduce-harm").answer()).isEqualTo("DPO");
        assertThat(Rules.goal("max-customization").answer()).isEqualTo("full fine-tuning");
        assertThat(Rules.goal("output-format").answer()).isEqualTo("SFT");
        assertThat(Rules.goal("domain-knowledge").reasons()).hasSize(2);
        assertThatThrownBy(() -> Rules.goal("world-peace")).hasMessageContaining("expected one of");
        assertThat(Rules.datasetSize(50).answer()).isEqualTo("few-shot prompting");
        assertThat(Rules.datasetSize(300).answer()).contains("overfitting");
        assertThat(Rules.datasetSize(300).reasons()).anySatisfy(r -> assertThat(r.source()).isEqualTo("seed 003"));
        assertThat(Rules.datasetSize(5000).answer()).isEqualTo("SFT with LoRA");
        assertThat(Rules.datasetSize(50_000).answer()).isEqualTo("SFT + DPO, or full fine-tuning");
    }

    @Test
    void seed001RecommendationWithRecomputedGpuCounts() {
        // the seed's own example: 13B, 2 A100s, 200K examples, instruction, 5 variants → lora
        var r = Rules.recommend(Catalog.get("llama-2-13b"), 2, 200_000, 512, "instruction", 5, 1000.0, 1.90);
        assertThat(r.method()).isEqualTo("lora");
        assertThat(r.fullGpus()).isGreaterThan(r.loraGpus());
        assertThat(r.qloraGpus()).isEqualTo(1);
        // domain knowledge wants full fine-tuning, but one GPU cannot hold 7B's 16 B/param → qlora
        var d = Rules.recommend(Catalog.get("llama-2-7b"), 1, 10_000, 512, "domain_knowledge", 1, null, 1.90);
        assertThat(d.method()).isEqualTo("qlora");
        assertThat(d.reasons()).anySatisfy(x -> assertThat(x.text()).contains("A100-80GB but 1 are available"));
        var ok = Rules.recommend(Catalog.get("llama-2-7b"), 8, 10_000, 512, "domain_knowledge", 1, null, 1.90);
        assertThat(ok.method()).isEqualTo("full_fine_tuning");
        // a budget below full fine-tuning's cost moves down to a cheaper method
        var cheap = Rules.recommend(Catalog.get("llama-2-7b"), 8, 1_000_000, 512, "domain_knowledge", 1, ok.fullUsd() * 0 + 1.0, 1.90);
        assertThat(cheap.reasons()).anySatisfy(x -> assertThat(x.text()).contains("budget"));
        assertThat(Rules.recommend(Catalog.get("llama-2-7b"), 1, 20_000_000, 512, "task_specific", 1, null, 1.90).reasons().getFirst().text()).contains(">10M");
        assertThatThrownBy(() -> Rules.recommend(Catalog.get("llama-2-7b"), 1, 1, 1, "vibes", 1, null, 1)).hasMessageContaining("expected instruction");
    }

    @Test
    void hyperparameterWarningsNameTheirSeed() {
        var w = Checks.check(new Checks.Run(Method.LORA, 1e-3, 128, 128.0, 10.0, 300L, 0.05, true, true, 100_000_000L, null, 7.0, false, 0.0));
        var texts = w.stream().map(Rules.Reason::toString).toList();
        assertThat(texts).anySatisfy(t -> assertThat(t).startsWith("[seed 001] lr 1.0e-03 is outside LoRA"));
        assertThat(texts).anySatisfy(t -> assertThat(t).startsWith("[seed 000] r=128 > 64"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("lora_alpha = r"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("under 500"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("10 epochs on 300"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("validation split 5 %"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("instruct model"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("below 1B tokens"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("LoRA on raw domain text"));
        assertThat(texts).anySatisfy(t -> assertThat(t).contains("no warm-up"));
        var full = Checks.check(new Checks.Run(Method.FULL, 2e-4, null, null, 3.0, 5000L, 0.1, false, false, null, null, 7.0, false, 0.03));
        assertThat(full.stream().map(Rules.Reason::text)).anySatisfy(t -> assertThat(t).contains("above full fine-tuning's 1e-5–5e-5"))
                .anySatisfy(t -> assertThat(t).contains("mix in at least 5 %")).anySatisfy(t -> assertThat(t).contains("gradient checkpointing"));
        assertThat(Checks.check(new Checks.Run(Method.LORA, 2e-4, 16, 32.0, 3.0, 5000L, 0.1, false, false, null, null, 0.5, false, 0.03))).isEmpty();
    }

    @Test
    void reportsRenderForEveryCatalogModelMethodAndDevice() {
        var devices = Gpus.names().stream().map(Gpus::get).toList();
        for (var e : Catalog.MODELS.entrySet())
            for (Method m : Method.values()) {
                var s = new Setup(e.getValue(), m, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, m == Method.QLORA, 0.5, 1024, 16, List.of("all-linear"), true, Runtime.GPU);
                var run = new Checks.Run(m, 2e-4, 16, 32.0, 3.0, 10_000L, 0.1, false, false, null, null, ParamCount.total(e.getValue()) / 1e9, false, 0.03);
                var report = PlanReport.build(new PlanReport.Inputs(e.getKey(), e.getValue(), s, devices, 10_000, 5_120_000, "assumed", 3, 0.35, 3, 5, run));
                assertThat(((java.util.List<?>) report.get("devices"))).hasSize(devices.size());
                String text = PlanReport.render(report, false), md = PlanReport.render(report, true);
                assertThat(text).contains("predicted peak").contains("h100").contains(e.getKey());
                assertThat(md).contains("| component | bytes |").contains("| predicted peak |");
                var dpo = PlanReport.build(new PlanReport.Inputs(e.getKey(), e.getValue(), s.withStage(Stage.DPO, Reference.of(Stage.DPO, m, false, false, false), 10_000),
                        devices, 10_000, 10_240_000, "assumed", 3, 0.35, 3, 5, run));
                assertThat(PlanReport.render(dpo, false)).contains("pairs = 2 rows").contains(m == Method.FULL ? "reference log-probs (stored" : "reference pass");
            }
    }

    @Test
    void devicesAndPrices() {
        assertThat(Gpus.get("H100").bf16Tflops()).isEqualTo(989.4);
        assertThat(Gpus.get("apple-m-64gb").memoryGb()).isCloseTo(48, within(1e-9));
        assertThat(Gpus.get("this-machine").memoryBytes()).isPositive();
        assertThat(Gpus.priced(Gpus.get("t4"), java.util.Map.of("t4", 0.35)).usdPerHour()).isEqualTo(0.35);
        assertThatThrownBy(() -> Gpus.get("tpu-v9")).hasMessageContaining("unknown GPU 'tpu-v9'").hasMessageContaining("a100-80gb");
    }

    /** DoRA on lora/qlora: magnitude vectors are trainable, and one projection's B·A and W + s·B·A (fp32) are alive per pass. */
    @Test
    void doraIsAFlagOnLoraAndQlora() {
        var c = Catalog.get("llama-2-7b");
        for (Method m : new Method[]{Method.LORA, Method.QLORA}) {
            var plain = gpu("llama-2-7b", m, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024);
            var dora = plain.withDora(true);
            // 7 projections per layer: out = 4096 (q, k, v, o, down) and 11008 (gate, up); 32 layers
            assertThat(dora.trainable() - plain.trainable()).isEqualTo(32L * (5 * 4096 + 2 * 11008));
            var e = MemoryPlan.estimate(dora);
            assertThat(e.part("dora norm temporaries (one projection at a time)")).isEqualTo(ParamCount.largestLinear(c) * 4 * 3); // bf16 W cast to fp32 too
            assertThat(e.part("activations (layer inputs + one layer recomputed)")).isGreaterThan(MemoryPlan.estimate(plain).part("activations (layer inputs + one layer recomputed)"));
            assertThat(e.peak()).isGreaterThan(MemoryPlan.estimate(plain).peak());
            assertThat(MemoryPlan.estimate(dora.withBatch(2)).part("dora norm temporaries (one projection at a time)")).as("per projection, not per token").isEqualTo(e.part("dora norm temporaries (one projection at a time)"));
        }
        assertThatThrownBy(() -> gpu("llama-2-7b", Method.FULL, Precision.BF16_MIXED, Optim.ADAMW, 1, 2048, true, 1024).withDora(true)).hasMessageContaining("DoRA");
        assertThatThrownBy(() -> Method.parse("dora")).hasMessageContaining("--use-dora");
        var cli = dev.tune4j.CliRun.of("plan", "--model", "smollm2-135m", "--method", "qlora", "--use-dora");
        assertThat(cli.code()).as(cli.err()).isZero();
        assertThat(cli.out()).contains("dora norm temporaries");
        var bad = dev.tune4j.CliRun.of("plan", "--model", "smollm2-135m", "--method", "dora");
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("--use-dora");
    }
}
