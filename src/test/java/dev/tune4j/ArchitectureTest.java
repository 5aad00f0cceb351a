package dev.tune4j;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * DESIGN.md's package arrows point only downward, and each package stays within a line budget (STYLE.md #9): checked on
 * the source text, so a forbidden import fails the build, not a code review.
 */
class ArchitectureTest {
    static final Path SRC = Path.of("src/main/java/dev/tune4j");

    /** What each package may import from tune4j (besides itself) and whether it may touch libtorch. */
    record Rule(Set<String> mayUse, boolean libtorch, int maxLines) {}

    static final Map<String, Rule> RULES = Map.ofEntries(
            Map.entry("hf", new Rule(Set.of(), false, 2_200)),
            Map.entry("tensor", new Rule(Set.of(), true, 775)), // 715 until the vectorized mask draw (Dropout.drawGroups, its per-thread buffers); 690 until loaded tensors advised to huge pages under tcmalloc (NativeHeap.adviseHugePages); 660 until the allocator in use (NativeHeap.cachingAllocator, tcmalloc's release); 625 until a mask kept as its dropped indices (Dropout.droppedAt, zeroAt); 600 until Dropout.dropped (x·m as a zeroed copy, one place for the redrawn and the no-grad paths); 560 until masks drawn again from their seed (Dropout.zeroDropped, 16-bit draws); 470 until Dropout (parallel masks, 4× libtorch's CPU dropout), NativeHeap.trim and Memory.resetPeak; 400 until the CPU bf16-matmul path (CpuFeatures, Compute.of, each path's libtorch/OpenBLAS thread layout)
            Map.entry("model", new Rule(Set.of("hf", "tensor"), true, 1_500)),
            Map.entry("text", new Rule(Set.of("hf"), false, 2_000)),
            Map.entry("generate", new Rule(Set.of("model", "tensor", "hf"), true, 950)), // hf: for UserError (bad sampling settings are the user's); 500 until the engine (continuous batching, incremental text, per-request sampling)
            Map.entry("quant", new Rule(Set.of("hf", "tensor", "model"), true, 600)),
            Map.entry("plan", new Rule(Set.of("hf"), false, 1_375)), // 1,350 until each allocator's own slack (MemoryPlan.Heap: glibc, tcmalloc); 1,325 until forCompute (the one choice of estimate per compute path; train and bench each had a copy); 1,250 until the CPU bf16-matmul path's own estimate (forBf16Matmul, fitted to the bench peaks); 1,100 until the preference stages and DoRA (Stage, Reference, their parts and FLOPs)
            Map.entry("peft", new Rule(Set.of("hf", "tensor", "model", "quant"), true, 1_200)), // 1,150 until the review fixes (hook arguments closed, state checks, copies dropped on a train/eval switch); 1,100 until bf16 copies of A and scaling·B for evaluation and decoding; 930 until LoraDropout (LoRA dropout differentiated by hand: masks drawn again, not kept); 900 until merge's progress meters (loading, writing, verifying); 600 + regex checks and Merge.VerificationFailed (issue 11) + DoRA (magnitude, detached norm, merge/unmerge, its file keys) + PEFT-like validation (typed config keys, layers_to_transform, rank/alpha_pattern)
            Map.entry("data", new Rule(Set.of("hf", "text"), false, 1_320)), // 1,300 until UserError (issue 11 item 7); 800 until the preference formats and strict streaming reads
            // dist: c10d process groups (Gloo/NCCL) found through torchrun's environment, bucketed collectives, ZeRO's partition, the local launcher
            Map.entry("dist", new Rule(Set.of("hf"), true, 550)),
            Map.entry("train", new Rule(Set.of("hf", "tensor", "model", "peft", "data", "quant", "dist"), true, 2_725)), // 2,700 until TrainConfig.evalExamples (a short run validates on at most half of what it trains on); 2,650 until the frozen head's backward by hand (Head.backwardFrozen: 6 bytes a logit, not 20); 2,300 until data parallel (the DataParallel seam, ZeroOptimizer, Shard: sharded batches, reduced losses, metrics and evaluation); 2,200 until StepProgress became the one progress bar (phases shown once they last; cli's copy removed) and the loop timed its validation
            Map.entry("eval", new Rule(Set.of("hf", "tensor", "model", "text", "data", "generate", "peft", "train"), true, 1_000)), // 900 until report.html drew its own charts, heat map and phase/memory bars (Charts) with rounded units (Units)
            Map.entry("recipes", new Rule(Set.of("hf", "tensor", "model", "text", "peft", "train", "data", "eval", "quant", "plan", "dist"), true, 1_300)), // 1,275 until the validation share of a short run (evalShare: half of what it trains on); 1,260 until the compute choice (bf16 GEMMs on the CPU) and LoRA dropout in the planner; 1,200 until data parallel (rank 0 prepares the run folder, the others wait; per-rank memory; ZeRO's optimizer)
            // serve: HTTP and JSON over the engine; no libtorch. model for the LlamaModel the engine and AdapterSource take,
            // peft to load adapters, text for the tokenizer and chat templates, hf for UserError and the adapter loader's format errors.
            Map.entry("serve", new Rule(Set.of("generate", "model", "peft", "text", "hf"), false, 1_300)),
            Map.entry("cli", new Rule(Set.of("hf", "tensor", "model", "text", "generate", "peft", "train", "data", "recipes", "eval", "quant", "plan", "serve", "dist"), true, 2_800))); // 2,750 until bench load and bench --compute-dtype (issue 12); 2,700 until data parallel (train and bench train start their workers; plan --nproc/--zero); 2,400 until cli/Errors (one error policy) and bench serve (ServeBench); 2,550 until serve (ServeCommand: vLLM's flags mapped one to one onto ServeConfig)

    @Test
    void packagesImportOnlyDownward() throws IOException {
        var violations = new ArrayList<String>();
        try (Stream<Path> files = Files.walk(SRC)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                String pkg = SRC.relativize(f).getName(0).toString();
                Rule rule = RULES.get(pkg);
                assertThat(rule).as("package '" + pkg + "' has no rule in ArchitectureTest (add it with its arrows)").isNotNull();
                for (String line : Files.readAllLines(f)) {
                    String l = line.strip();
                    if (!l.startsWith("import ")) continue;
                    if (l.contains("org.bytedeco") && !rule.libtorch()) violations.add(f + ": " + l + " (no libtorch in " + pkg + ")");
                    if (l.startsWith("import dev.tune4j.") || l.startsWith("import static dev.tune4j.")) {
                        String used = l.replaceFirst("import (static )?dev\\.tune4j\\.", "").split("\\.")[0];
                        if (!used.equals(pkg) && !rule.mayUse().contains(used)) violations.add(f + ": " + l + " (" + pkg + " may use " + rule.mayUse() + ")");
                    }
                }
            }
        }
        assertThat(violations).isEmpty();
    }

    @Test
    void packagesStayWithinTheirLineBudget() throws IOException {
        for (var e : RULES.entrySet()) {
            long lines;
            try (Stream<Path> files = Files.walk(SRC.resolve(e.getKey()))) {
                lines = files.filter(p -> p.toString().endsWith(".java")).mapToLong(p -> {
                    try {
                        return Files.readAllLines(p).size();
                    } catch (IOException ex) {
                        throw new RuntimeException(ex);
                    }
                }).sum();
            }
            assertThat(lines).as("lines in package " + e.getKey()).isLessThanOrEqualTo(e.getValue().maxLines());
        }
    }
}
