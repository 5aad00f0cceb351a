package dev.tune4j.peft;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Random;

/**
 * Folds LoRA adapters into a base model and writes a plain Hugging Face folder, then proves it: a fixed batch goes
 * through base + adapters (unmerged) and through the written folder, reloaded from disk; logits that differ beyond the
 * tolerance fail the merge and nothing is published. W' = W + Σ weightᵢ · scalingᵢ · Bᵢ@Aᵢ, computed in fp32. A DoRA
 * adapter merges as PEFT does, W' = (m/‖W + s·B@A‖_row)[:,None]·(W + s·B@A) (with a weight w: W + w·(that − W)); it
 * rescales the whole weight, so it is merged alone (with others the result would depend on the order).
 */
public final class Merge {
    private Merge() {}

    /** @param relativeLogitDiff max |Δlogit| divided by the logit scale (max |logit|, at least 1) */
    public record Result(Path out, double relativeLogitDiff, double tolerance, int modules, DType dtype) {}

    /**
     * Default verification tolerance, relative to the logit scale (max |logit| of the reference, at least 1): fp32 merges
     * must agree to 1e-4; rounding weights to 16 bits moves logits by a few percent (measured 1.8% for bf16 on the golden
     * models, whose logits reach |10|).
     */
    public static double defaultTolerance(DType d) {
        return switch (d) {
            case F32 -> 1e-4;
            case F16 -> 1e-2;
            default -> 5e-2;
        };
    }

    /** Progress of a long phase in bytes (loading, writing, reloading); the CLI shows each as a bar with rate and ETA. */
    public interface Meter extends AutoCloseable {
        void add(long bytes);

        @Override
        void close();
    }

    /** Opens a {@link Meter} for a phase of {@code totalBytes}. */
    public interface Meters {
        Meter start(String task, long totalBytes);

        Meters NONE = (task, total) -> new Meter() {
            public void add(long bytes) {}

            public void close() {}
        };
    }

    /** @param log one line per phase (load, merge, write, verify) with its time; the caller reports the {@link Result} */
    public static Result run(Path modelDir, List<Path> adapters, List<Double> weights, Path out, DType dtype, long maxShardBytes,
                             Double tolerance, PrintStream log) throws IOException {
        return run(modelDir, adapters, weights, out, dtype, maxShardBytes, tolerance, log, Meters.NONE);
    }

    /** @param meters progress of loading, writing and reloading, in bytes */
    public static Result run(Path modelDir, List<Path> adapters, List<Double> weights, Path out, DType dtype, long maxShardBytes,
                             Double tolerance, PrintStream log, Meters meters) throws IOException {
        if (adapters.isEmpty()) throw new UserError("give at least one --adapter");
        if (!weights.isEmpty() && weights.size() != adapters.size())
            throw new UserError(weights.size() + " --weight values for " + adapters.size() + " adapters");
        refuseQuantized(modelDir);
        long t = System.nanoTime();
        try (ModelFolder f = ModelFolder.open(modelDir); LlamaModel m = load(f, "loading " + modelDir.getFileName(), meters)) {
            t = phase(log, "loaded the base model", t);
            DType stored = dtype != null ? dtype : storedDtype(f);
            double tol = tolerance != null ? tolerance : defaultTolerance(stored);
            var loaded = new java.util.ArrayList<LoraAdapter>();
            int modules = 0;
            try {
                for (int i = 0; i < adapters.size(); i++) {
                    LoraAdapter a = LoraAdapter.load(adapters.get(i), m);
                    if (a.config.useDora() && adapters.size() > 1)
                        throw new UserError(adapters.get(i) + " is a DoRA adapter (use_dora: true): it rescales each row of the whole weight, "
                                + "so merging it together with other adapters depends on the order and is not supported; merge it alone");
                    if (!weights.isEmpty()) a.setWeight(weights.get(i));
                    modules += a.modules().size();
                    loaded.add(a);
                }
                long[] ids = fixedBatch(m.config.vocabSize());
                float[] reference = logits(m, ids);
                for (LoraAdapter a : loaded) a.mergeAndUnload();
                t = phase(log, "loaded and merged " + modules + " adapter module(s)", t);

                // built (save stages its own files beside it) and verified under a staging name beside out, .NAME.tune4j-tmp-PID-N,
                // that the next write into that folder removes if this process was killed; published only once verified
                Path stage = AtomicFiles.stagingName(out, "tmp");
                try {
                    try (Meter w = meters.start("writing " + out.getFileName(), m.parameterCount() * stored.bytes)) {
                        m.save(stage, stored, maxShardBytes, w::add);
                    }
                    for (String name : List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "tokenizer.model"))
                        if (Files.exists(modelDir.resolve(name))) Files.copy(modelDir.resolve(name), stage.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                    t = phase(log, "wrote the merged model as " + stored, t);
                    double diff, scale = 1;
                    for (float x : reference) scale = Math.max(scale, Math.abs(x));
                    try (ModelFolder written = ModelFolder.open(stage); LlamaModel reloaded = load(written, "verifying", meters)) {
                        diff = maxAbsDiff(logits(reloaded, ids), reference) / scale;
                    }
                    if (!(diff <= tol))
                        throw new VerificationFailed(String.format("merge verification failed: logits of the merged %s model differ from base + adapter by %.3g of the logit scale %.3g (tolerance %.3g); nothing was written to %s",
                                stored, diff, scale, tol, out));
                    phase(log, "verified (reloaded, logits against base + adapters)", t);
                    AtomicFiles.publishDir(stage, out);
                    return new Result(out, diff, tol, modules, stored);
                } finally {
                    AtomicFiles.deleteTree(stage);
                }
            } finally {
                loaded.forEach(LoraAdapter::close);
            }
        }
    }

    private static LlamaModel load(ModelFolder f, String task, Meters meters) {
        try (Meter bar = meters.start(task, f.totalBytes())) {
            return LlamaModel.load(f, Compute.cpu(), bar::add);
        }
    }

    /** One line per phase with its time (a merge of a real model takes minutes: load, merge, write, reload and verify). */
    private static long phase(PrintStream log, String what, long since) {
        long now = System.nanoTime();
        log.printf("merge: %s in %.1f s%n", what, (now - since) / 1e9);
        return now;
    }

    /** Quantized bases (bitsandbytes/GPTQ/AWQ config, or integer weight tensors) are refused: the update is fp32. */
    static void refuseQuantized(Path modelDir) throws IOException {
        Path cfg = modelDir.resolve("config.json");
        if (Files.exists(cfg) && new ObjectMapper().readTree(cfg.toFile()).has("quantization_config"))
            throw new HfFormatException(cfg, "the base model is quantized (quantization_config present): merging into 4-bit weights would "
                    + "round the update away. Dequantize first (load the original bf16/fp32 weights) and merge into those.");
    }

    static DType storedDtype(ModelFolder f) {
        var counts = f.dtypeCounts();
        for (DType d : List.of(DType.BF16, DType.F16)) if (counts.getOrDefault(d, 0L) > 0) return d;
        return DType.F32;
    }

    static long[] fixedBatch(int vocab) {
        var r = new Random(20241123);
        long[] ids = new long[2 * 16];
        for (int i = 0; i < ids.length; i++) ids[i] = r.nextInt(vocab);
        return ids;
    }

    static float[] logits(LlamaModel m, long[] ids) {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            return Tensors.toFloats(m.logits(Tensors.longs(ids, 2, ids.length / 2), null, null));
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) d = Math.max(d, Math.abs((double) a[i] - b[i]));
        return d;
    }

    /** The merged model does not reproduce base + adapter within the tolerance: nothing was published. */
    public static final class VerificationFailed extends IllegalStateException {
        public VerificationFailed(String message) {
            super(message);
        }
    }
}
