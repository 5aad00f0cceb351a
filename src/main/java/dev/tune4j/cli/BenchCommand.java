package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.hf.ConfigPresets;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;

/** Throughput and peak memory on fixed, named shapes (random weights) or a model folder. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure forward or generation tokens/s and peak resident memory.")
final class BenchCommand implements Callable<Integer> {
    enum What {forward, generate, train, serve, load}

    @Parameters(paramLabel = "WHAT", description = "forward | generate | train | serve (the engine in process: concurrent requests, mixed adapters)")
    What what;

    @Option(names = "--shape", description = "random-weight model of a published shape: stories260k, smollm2-135m, qwen2.5-0.5b, tiny")
    String shape;

    @Option(names = "--model", description = "model folder (instead of --shape)")
    Path model;

    @Option(names = "--batch-size", defaultValue = "1", description = "forward: rows per pass (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--seq-len", defaultValue = "256", description = "forward: tokens per row; generate: new tokens (default ${DEFAULT-VALUE})")
    int seqLen;

    @Option(names = "--steps", defaultValue = "10", description = "forward passes timed after one warm-up (default ${DEFAULT-VALUE})")
    int steps;

    @Option(names = "--method", defaultValue = "lora", description = "train: lora (default), qlora (NF4 + double quantization, block 64) or full (every weight)")
    String method;

    @Option(names = "--r", defaultValue = "16", description = "train: LoRA rank (default ${DEFAULT-VALUE})")
    int r;

    @Option(names = "--lora-alpha", defaultValue = "32", description = "train: LoRA alpha (default ${DEFAULT-VALUE})")
    double alpha;

    @Option(names = "--gradient-checkpointing", description = "train: recompute layers in backward")
    boolean checkpointing;

    @Option(names = "--stage", defaultValue = "sft", description = "train: sft (default; rows with the second half labelled) or dpo (--batch-size pairs of --seq-len tokens: half prompt, half answer; sigmoid loss)")
    String stage;

    @Option(names = "--precompute-ref-logps", description = "train --stage dpo: reference log-probs computed once before timing instead of a reference pass per step")
    boolean precomputeRef;

    @Option(names = "--concurrency", split = ",", defaultValue = "1,8,32,64", description = "serve: concurrent requests (slots) to measure (default ${DEFAULT-VALUE})")
    List<Integer> concurrency;

    @Option(names = "--adapters", split = ",", defaultValue = "base,one,mixed8", description = "serve: base (no adapter), one (every request the same adapter), mixed8 (8 adapters round robin) (default ${DEFAULT-VALUE})")
    List<ServeBench.Mix> mixes;

    @Option(names = "--compute-dtype", description = "float32 or bfloat16, as train's --compute-dtype (default: bfloat16 on CUDA and on CPUs with bf16 dot products for hidden ≥ 512)")
    String computeDtype;

    @Option(names = "--lora-dropout", defaultValue = "0.05", description = "train: LoRA dropout, as train's --lora-dropout and the HF peer's benchmark (default ${DEFAULT-VALUE})")
    double loraDropout;

    @Option(names = "--loss-chunk", defaultValue = "" + dev.tune4j.train.TrainConfig.LOSS_CHUNK, description = "train: positions per chunk of the LM head, as train's --loss-chunk (default ${DEFAULT-VALUE})")
    int lossChunk;

    @Option(names = "--nproc-per-node", defaultValue = "1", description = "train: data-parallel worker processes on this machine (each --batch-size rows; tokens/s is the job's)")
    int nproc;

    @Option(names = "--zero", defaultValue = "0", description = "train with --nproc-per-node: ZeRO stage 0, 1 or 2")
    int zero;

    @Option(names = "--json", description = "print one JSON line with the results")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if ((shape == null) == (model == null)) throw new UserError("give exactly one of --shape NAME or --model DIR");
        if (batch < 1 || seqLen < 2 || steps < 1 || r < 1)
            throw new UserError("--batch-size, --steps and --r must be >= 1 and --seq-len >= 2, found " + batch + ", " + steps + ", " + r + " and " + seqLen);
        Limits.inRange("--nproc-per-node", nproc, 1, 1024, "processes");
        Limits.inRange("--zero", zero, 0, 2, "(ZeRO stage)");
        Limits.inRange("--loss-chunk", lossChunk, 1, 1 << 20, "positions");
        if (!(loraDropout >= 0 && loraDropout < 1)) throw new UserError("--lora-dropout: expected a probability from 0 to below 1, found " + loraDropout);
        if (what == What.train && nproc > 1 && System.getenv("WORLD_SIZE") == null) { // like train: N workers run this same command
            var args = new java.util.ArrayList<>(List.of(Main.lastArgs));
            return dev.tune4j.dist.Launcher.run(nproc, Main.class.getName(), args, System.out, System.err);
        }
        if (computeDtype != null && !List.of("float32", "bfloat16").contains(computeDtype))
            throw new UserError("--compute-dtype: expected float32 or bfloat16, found '" + computeDtype + "'");
        long hidden;
        try (ModelFolder f = model == null ? null : ModelFolder.open(model)) {
            hidden = f == null ? ConfigPresets.byName(shape).hiddenSize() : f.config().hiddenSize();
        }
        Compute compute = Compute.of(computeDtype, hidden);
        if (what == What.load) return load(compute);
        group = what == What.train ? dev.tune4j.dist.Group.join(System.getenv(), java.time.Duration.ofSeconds(600), compute.cuda()) : dev.tune4j.dist.Group.SINGLE;
        if (!group.leader()) System.setOut(new java.io.PrintStream(java.io.OutputStream.nullOutputStream()));
        ModelFolder folder = model == null ? null : ModelFolder.open(model);
        // frozen projections as a LoRA run keeps them: bf16 for bf16 GEMMs (or checkpointing a bf16 folder)
        boolean keepBf16 = !(what == What.train && !method.equals("lora")) && (compute.mixed() || (checkpointing && what == What.train));
        try (LlamaModel m = folder == null ? random(compute, keepBf16) : keepBf16 ? dev.tune4j.model.Bf16Weight.load(folder, compute, b -> {}).model() : LlamaModel.load(folder, compute)) {
            if (folder != null) { // as train: the files unmapped once copied (their pages would count in the measured peak)
                folder.close();
                dev.tune4j.tensor.NativeHeap.trim();
            }
            var result = new LinkedHashMap<String, Object>();
            result.put("bench", what.name());
            result.put("model", shape != null ? shape : model.toString());
            result.put("device", compute.describe());
            result.put("threads", org.bytedeco.pytorch.global.torch.get_num_threads());
            result.put("allocator", dev.tune4j.tensor.NativeHeap.allocatorName());
            result.put("parameters", m.parameterCount());
            result.put("phase", switch (what) { // what the timed part is
                case train -> "Trainer.step after one warm-up step: forward, backward, clip, AdamW update";
                case forward -> "forward passes without gradients (logits), after one warm-up pass";
                case generate -> "greedy decoding of --seq-len tokens after a 16-token prompt, after a warm-up";
                case serve -> "waves of concurrent requests through generate.Engine";
                case load -> "";
            });
            var rnd = new Random(0);
            dev.tune4j.tensor.Memory.resetPeak(); // peak_rss_mib: the measured phase's peak, not building a random model's
            if (what == What.train) {
                trainSteps(m, rnd, result);
            } else if (what == What.serve) {
                for (int c : concurrency) Limits.inRange("--concurrency", c, 1, 1024, "slots");
                if (seqLen + 17 > m.config.maxPositionEmbeddings()) throw new UserError("--seq-len: expected at most " + (m.config.maxPositionEmbeddings() - 17) + " new tokens (the model's context), found " + seqLen);
                result.put("engine", "in process (no HTTP): generate.Engine, one model thread, continuous batching");
                result.put("runs", ServeBench.run(m, concurrency, mixes, seqLen, json));
            } else if (what == What.forward) {
                long[] ids = new long[batch * seqLen];
                for (int i = 0; i < ids.length; i++) ids[i] = rnd.nextInt(m.config.vocabSize());
                double seconds = 0;
                for (int s = 0; s <= steps; s++) {
                    long t0 = System.nanoTime();
                    try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                        var logits = m.logits(compute.placeIndex(Tensors.longs(ids, batch, seqLen)), null, null);
                        logits.sum().item_float(); // wait for the device
                    }
                    if (s > 0) seconds += (System.nanoTime() - t0) / 1e9; // step 0 is the warm-up
                    if (!json && s > 0) System.err.printf("step %d/%d: %.1f tokens/s%n", s, steps, (double) batch * seqLen * s / seconds);
                }
                result.put("batch_size", batch);
                result.put("seq_len", seqLen);
                result.put("steps", steps);
                result.put("tokens_per_s", round((double) batch * seqLen * steps / seconds));
            } else {
                long[] prompt = new long[16];
                for (int i = 0; i < prompt.length; i++) prompt[i] = rnd.nextInt(m.config.vocabSize());
                Generator.generate(m, prompt, GenerationConfig.greedy(4), null, null); // warm-up
                long t0 = System.nanoTime();
                var r = Generator.generate(m, prompt, GenerationConfig.greedy(seqLen), null, null);
                double seconds = (System.nanoTime() - t0) / 1e9;
                result.put("prompt_tokens", prompt.length);
                result.put("new_tokens", r.tokens().length);
                result.put("tokens_per_s", round(r.tokens().length / seconds));
            }
            long measured = Memory.peakResidentBytes();
            result.put("peak_rss_mib", round(Memory.mib(measured)));
            if (!group.single()) { // every rank's peak (a collective), the first is rank 0's
                var peaks = new java.util.ArrayList<Double>();
                for (double p : group.gather(measured)) peaks.add(round(Memory.mib((long) p)));
                result.put("peak_rss_mib_per_rank", peaks);
            }
            if (what == What.train) {
                long predicted = predictedPeak(m.config, compute, m.linears().values().stream().anyMatch(l -> l.quantized instanceof dev.tune4j.model.Bf16Weight),
                        m.embeddingsBf16());
                result.put("predicted_peak_mib", round(Memory.mib(predicted)));
                result.put("prediction_error", Math.round(1000.0 * (predicted - measured) / measured) / 1000.0);
            }
            if (json) System.out.println(new ObjectMapper().writeValueAsString(result));
            else result.forEach((k, v) -> System.out.printf("%-14s %s%n", k, v));
        } finally {
            if (folder != null) folder.close();
            group.close();
        }
        return 0;
    }

    private dev.tune4j.dist.Group group = dev.tune4j.dist.Group.SINGLE;

    private LlamaModel random(Compute compute, boolean keepBf16) {
        LlamaModel m = LlamaModel.random(ConfigPresets.byName(shape), 0, compute);
        if (keepBf16 && compute.mixed()) dev.tune4j.model.Bf16Weight.keep(m);
        dev.tune4j.tensor.NativeHeap.trim(); // freed fp32 weights go back, as train's load returns them
        return m;
    }

    /**
     * Training steps on random ids with the first half of each row masked as prompt, timed after one warm-up step:
     * LoRA/QLoRA (all-linear adapters) or full fine-tuning (every weight), AdamW and clipping as in the recipes.
     */
    private void trainSteps(LlamaModel m, Random rnd, java.util.Map<String, Object> result) {
        if (!List.of("lora", "qlora", "full").contains(method)) throw new UserError("bench train: --method lora, qlora or full, found '" + method + "'");
        if (!List.of("sft", "dpo").contains(stage)) throw new UserError("bench train: --stage sft or dpo, found '" + stage + "'");
        if (method.equals("qlora")) {
            var sizes = dev.tune4j.quant.FourBit.quantize(m, "nf4", 64, true);
            if (model == null) m.embeddingsToBf16(); // the random model stands for a bf16 folder, as train --method qlora loads one
            dev.tune4j.tensor.NativeHeap.trim(); // the freed fp32 projections go back, as train's load-time quantization never keeps them
            result.put("base_linear_bytes_ratio", Math.round(sizes.ratio() * 10000) / 10000.0);
        }
        long[] ids = new long[batch * seqLen], labels = new long[batch * seqLen];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rnd.nextInt(m.config.vocabSize());
            labels[i] = i % seqLen < seqLen / 2 ? -100 : ids[i];
        }
        dev.tune4j.train.MicroSource data = stage.equals("dpo") ? randomPairs(m, rnd) : new dev.tune4j.train.MicroSource() { // the same batch every step
            public int perEpoch() { return 1; }
            public dev.tune4j.train.Micro get(long k, Compute c) {
                return new dev.tune4j.train.Micro(dev.tune4j.model.Batch.of(c.placeIndex(Tensors.longs(ids, batch, seqLen))), labels, null, ids.length, predictedAt(k), null);
            }
            public long predictedAt(long k) {
                long n = 0;
                for (int i = 0; i < ids.length; i++) if (i % seqLen > 0 && labels[i] != -100) n++;
                return n;
            }
            public int inOrderCount() { return 0; }
            public dev.tune4j.train.Micro inOrder(int i, Compute c) { throw new IllegalStateException(); }
            public boolean isEmpty() { return false; }
        };
        var cfg = new dev.tune4j.peft.LoraConfig(r, alpha, loraDropout, List.of("all-linear"), false);
        boolean full = method.equals("full");
        try (var lora = full ? null : dev.tune4j.peft.LoraAdapter.create(m, cfg, 0, "bench")) {
            java.util.LinkedHashMap<String, Tensor> params;
            if (full) {
                m.trainAll();
                params = m.namedTensors();
            } else params = lora.namedParameters();
            long trainable = params.values().stream().mapToLong(Tensor::numel).sum();
            var trainables = new dev.tune4j.train.Trainer.Trainable() {
                public java.util.LinkedHashMap<String, Tensor> parameters() { return params; }
                public void train(boolean on) { if (lora != null) lora.train(on); }
                public void saveInto(Path dir) {}
            };
            var loop = new dev.tune4j.train.Trainer.Loop(steps + 1, 1, 1.0, dev.tune4j.train.LrSchedule.of("constant", 1e-4, 0, steps + 1), 0, 0, 0, 0, 1, 0,
                    checkpointing, lossChunk, 0, null, null, "bench");
            // data parallel: every rank trains on the same random batch (a stand-in for its shard); gradients are summed
            var dp = dev.tune4j.train.DataParallel.of(group, zero, List.copyOf(params.values()));
            try (var opt = dp.adamW(params.values().stream().map(p -> new dev.tune4j.train.AdamW.Param(p, 0.0)).toList(), false)) {
                // exactly the step the recipes run: Trainer.step (accumulate → forward/backward → clip → update)
                var trainer = new dev.tune4j.train.Trainer(m, trainables, objective(m, lora, data), data, data, opt, loop, dp);
                trainables.train(true);
                dev.tune4j.tensor.Memory.resetPeak(); // from the warm-up step on: after quantizing and attaching
                double seconds = 0, reduceBefore = 0;
                for (int s = 0; s <= steps; s++) {
                    var st = trainer.step(s + 1, 0);
                    if (s == 0) reduceBefore = dp.reduceSeconds(); // the warm-up step is not timed
                    if (s > 0) seconds += st.seconds();
                    if (!json && s > 0) System.err.printf("step %d/%d: %.1f tokens/s%n", s, steps, (double) batch * seqLen * s / seconds);
                }
                result.put("method", method);
                result.put("stage", stage);
                if (stage.equals("dpo")) result.put("reference", precomputeRef ? "precomputed" : "adapter off, per step");
                if (!full) result.put("r", r);
                result.put("trainable", trainable);
                result.put("batch_size", batch);
                result.put("seq_len", seqLen);
                result.put("steps", steps);
                result.put("gradient_checkpointing", checkpointing);
                int rows = (stage.equals("dpo") ? 2 * batch : batch) * group.world();
                if (!group.single()) {
                    result.put("world_size", group.world());
                    result.put("zero", zero);
                    result.put("allreduce_ms_per_step", round(1000 * (dp.reduceSeconds() - reduceBefore) / steps));
                }
                result.put("tokens_per_s", round((double) rows * seqLen * steps / seconds));
                result.put("steps_per_s", Math.round(steps / seconds * 1000) / 1000.0);
            }
        }
    }

    /** --batch-size random pairs: a prompt of half the sequence, chosen and rejected answers of the other half each. */
    private dev.tune4j.train.PairBatches randomPairs(LlamaModel m, Random rnd) {
        var pairs = new java.util.ArrayList<dev.tune4j.data.PreferencePair>();
        java.util.function.IntFunction<long[]> tokens = n -> rnd.longs(n, 0, m.config.vocabSize()).toArray();
        for (int i = 0; i < batch; i++) pairs.add(new dev.tune4j.data.PreferencePair(tokens.apply(seqLen / 2), tokens.apply(seqLen - seqLen / 2), tokens.apply(seqLen - seqLen / 2)));
        return dev.tune4j.train.PairBatches.pairs(pairs, batch, 0, 0, false, 0);
    }

    /** Token cross-entropy, or DPO's sigmoid loss against the base with the adapter off (per step, or precomputed once). */
    private dev.tune4j.train.Objective objective(LlamaModel m, dev.tune4j.peft.LoraAdapter lora, dev.tune4j.train.MicroSource data) {
        if (!stage.equals("dpo")) return dev.tune4j.train.TokenLoss.INSTANCE;
        if (lora == null && !precomputeRef) throw new UserError("bench train --stage dpo --method full needs --precompute-ref-logps (tune4j keeps no second model)");
        var live = dev.tune4j.train.PreferenceLoss.switched(m, () -> { if (lora != null) lora.enable(false); }, () -> { if (lora != null) lora.enable(true); }, lossChunk);
        dev.tune4j.train.PreferenceLoss.Reference ref = live;
        if (precomputeRef) {
            double[] fixed;
            try (PointerScope s = new PointerScope()) {
                fixed = live.logps(data.get(0, m.compute));
            }
            ref = mb -> fixed;
        }
        return new dev.tune4j.train.PreferenceLoss(new dev.tune4j.train.PreferenceLoss.Config(dev.tune4j.train.PreferenceLoss.Type.SIGMOID, 0.1, 0, 0, 0), ref);
    }

    /** The planner's peak for exactly this bench run (labels: the second half of every row, --loss-chunk positions per head chunk). */
    private long predictedPeak(dev.tune4j.hf.ModelConfig c, Compute compute, boolean bf16Projections, boolean bf16Embeddings) {
        var s = new dev.tune4j.plan.MemoryPlan.Setup(c, dev.tune4j.plan.MemoryPlan.Method.parse(method), dev.tune4j.plan.MemoryPlan.Precision.BF16_MIXED,
                dev.tune4j.plan.MemoryPlan.Optim.ADAMW, batch, seqLen, checkpointing, 0.5, lossChunk, r, List.of("all-linear"), true,
                compute.describe().startsWith("cpu") ? dev.tune4j.plan.MemoryPlan.Runtime.CPU : dev.tune4j.plan.MemoryPlan.Runtime.GPU);
        if (stage.equals("dpo")) { // --batch-size pairs: the planner doubles them into rows and adds the reference as run
            var dpo = dev.tune4j.plan.MemoryPlan.Stage.parse("dpo");
            s = s.withStage(dpo, dev.tune4j.plan.MemoryPlan.Reference.of(dpo, s.method(), precomputeRef, false, false), batch);
        }
        var e = dev.tune4j.plan.MemoryPlan.perRank(s, group.world(), zero);
        return dev.tune4j.plan.MemoryPlan.forCompute(s, e, compute.mixed(), bf16Projections, bf16Embeddings, loraDropout,
                dev.tune4j.plan.MemoryPlan.Heap.of(dev.tune4j.tensor.NativeHeap.cachingAllocator())).peak();
    }

    /**
     * bench load: a model folder to ready-to-train — mapped, every tensor checked and copied into native memory (bf16
     * projections kept as stored with --gradient-checkpointing, as a LoRA run keeps them), a LoRA adapter attached — timed,
     * with the process's peak RSS and the Java heap's peak (the weights never pass through it).
     */
    private int load(Compute compute) throws Exception {
        if (model == null) throw new UserError("bench load needs --model DIR (a Hugging Face folder)");
        long t0 = System.nanoTime(), bf16 = 0, stored;
        LlamaModel m;
        try (ModelFolder f = ModelFolder.open(model)) {
            stored = f.totalBytes();
            if (checkpointing || compute.mixed()) {
                var loaded = dev.tune4j.model.Bf16Weight.load(f, compute, b -> {});
                m = loaded.model();
                bf16 = loaded.bf16Bytes();
            } else m = LlamaModel.load(f, compute);
        }
        try (m; var lora = dev.tune4j.peft.LoraAdapter.create(m, new dev.tune4j.peft.LoraConfig(r, alpha, 0.0, List.of("all-linear"), false), 0, "bench")) {
            double seconds = (System.nanoTime() - t0) / 1e9;
            long heapPeak = 0;
            for (var pool : java.lang.management.ManagementFactory.getMemoryPoolMXBeans())
                if (pool.getType() == java.lang.management.MemoryType.HEAP && pool.getPeakUsage() != null) heapPeak += pool.getPeakUsage().getUsed();
            var result = new LinkedHashMap<String, Object>();
            result.put("bench", "load");
            result.put("model", model.toString());
            result.put("device", compute.describe());
            result.put("phase", "open the folder, check and copy every tensor into native memory, attach a LoRA adapter (r=" + r + ", all-linear)");
            result.put("parameters", m.parameterCount());
            result.put("stored_mib", round(Memory.mib(stored)));
            result.put("bf16_projections_mib", round(Memory.mib(bf16)));
            result.put("load_seconds", Math.round(seconds * 1000) / 1000.0);
            result.put("peak_rss_mib", round(Memory.mib(Memory.peakResidentBytes())));
            result.put("heap_peak_mib", round(Memory.mib(heapPeak)));
            if (json) System.out.println(new ObjectMapper().writeValueAsString(result));
            else result.forEach((k, v) -> System.out.printf("%-20s %s%n", k, v));
        }
        return 0;
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
