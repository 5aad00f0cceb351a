package dev.tune4j.train;

import java.nio.file.Path;
import java.util.*;

/**
 * Everything a training run is told, named like the CLI's long flags (which follow PEFT/TRL/transformers names) and
 * read from a YAML/JSON file with the same keys; flags override the file. Defaults are those of common LoRA SFT recipes
 * (TRL/Axolotl): r 16, alpha 32, dropout 0.05, all-linear, lr 2e-4, linear schedule, batch 4, one epoch.
 */
public record TrainConfig(
        Path model, Path data, Path out, String method,
        // LoRA
        int r, double loraAlpha, double loraDropout, List<String> targetModules, boolean useRslora,
        // data
        String format, String promptStyle, int maxSeqLen, double valRatio, Path valFile, Path mixFile, double mixRatio,
        boolean skipBadRows, boolean packing,
        // optimisation
        double lr, int epochs, int maxSteps, int batchSize, int gradAccum, String scheduler, double warmupRatio, int warmupSteps,
        double weightDecay, double maxGradNorm, long seed, boolean gradientCheckpointing, int lossChunk,
        // evaluation, checkpoints, logging
        int evalSteps, int saveSteps, int keepBest, int keepLast, int earlyStoppingPatience, int loggingSteps, String resume,
        // after training
        Path generalFile, double forgettingThreshold,
        // QLoRA
        String quant, boolean doubleQuant, int blocksize, String optim, boolean optimOffload, String computeDtype,
        // the run folder: replace an existing run instead of refusing it
        boolean overwrite) {

    /** Every key a file or flag may set, in the order help lists them. */
    public static final List<String> KEYS = List.of("model", "data", "out", "method", "r", "lora-alpha", "lora-dropout", "target-modules",
            "use-rslora", "format", "prompt-style", "max-seq-len", "val-ratio", "val-file", "mix-file", "mix-ratio", "skip-bad-rows", "packing",
            "lr", "epochs", "max-steps", "batch-size", "grad-accum", "scheduler", "warmup-ratio", "warmup-steps", "weight-decay",
            "max-grad-norm", "seed", "gradient-checkpointing", "loss-chunk", "eval-steps", "save-steps", "keep-best", "keep-last",
            "early-stopping-patience", "logging-steps", "resume", "general-file", "forgetting-threshold", "quant", "double-quant", "blocksize", "optim", "optim-offload", "compute-dtype", "overwrite");

    public TrainConfig {
        if (!Set.of("lora", "qlora", "full").contains(method)) throw new IllegalArgumentException("method: expected lora, qlora or full, found '" + method + "'");
        if (computeDtype != null && !Set.of("float32", "bfloat16").contains(computeDtype))
            throw new IllegalArgumentException("compute-dtype: expected float32 or bfloat16, found '" + computeDtype + "'");
        if (!Set.of("adamw", "adamw8bit").contains(optim)) throw new IllegalArgumentException("optim: expected adamw or adamw8bit, found '" + optim + "'");
        if (!Set.of("nf4", "fp4").contains(quant)) throw new IllegalArgumentException("quant: expected nf4 or fp4, found '" + quant + "'");
        if (batchSize < 1 || gradAccum < 1) throw new IllegalArgumentException("batch-size and grad-accum must be >= 1");
        if (epochs < 1 && maxSteps < 1) throw new IllegalArgumentException("need epochs >= 1 or max-steps >= 1");
        if (!(lr > 0)) throw new IllegalArgumentException("lr must be positive, found " + lr);
        if (keepBest < 0 || keepLast < 0) throw new IllegalArgumentException("keep-best and keep-last must be >= 0");
        targetModules = List.copyOf(targetModules);
    }

    /** Builds a config from string values by key (file values and flags merged by the caller); unknown keys are errors. */
    public static TrainConfig fromMap(Map<String, String> m, String source) {
        for (String k : m.keySet())
            if (!KEYS.contains(k)) throw new IllegalArgumentException(source + ": unknown key '" + k + "' (keys are the long flag names: " + String.join(", ", KEYS) + ")");
        var v = new Values(m, source);
        if (v.str("model", null) == null || v.str("data", null) == null || v.str("out", null) == null)
            throw new IllegalArgumentException(source + ": model, data and out are required");
        return new TrainConfig(Path.of(v.str("model", null)), Path.of(v.str("data", null)), Path.of(v.str("out", null)), v.str("method", "lora"),
                v.integer("r", 16), v.dbl("lora-alpha", 32), v.dbl("lora-dropout", 0.05),
                List.of(v.str("target-modules", "all-linear").split("\\s*,\\s*")), v.bool("use-rslora", false),
                v.str("format", null), v.str("prompt-style", null), v.integer("max-seq-len", 512), v.dbl("val-ratio", 0.1),
                v.path("val-file"), v.path("mix-file"), v.dbl("mix-ratio", 0), v.bool("skip-bad-rows", false), v.bool("packing", false),
                v.dbl("lr", 2e-4), v.integer("epochs", 1), v.integer("max-steps", -1), v.integer("batch-size", 4), v.integer("grad-accum", 1),
                v.str("scheduler", "linear").replace('-', '_'), v.dbl("warmup-ratio", 0), v.integer("warmup-steps", 0), v.dbl("weight-decay", 0),
                v.dbl("max-grad-norm", 1.0), v.integer("seed", 42), v.bool("gradient-checkpointing", "qlora".equals(m.get("method"))), v.integer("loss-chunk", 1024),
                v.integer("eval-steps", 0), v.integer("save-steps", 0), v.integer("keep-best", 1), v.integer("keep-last", 1),
                v.integer("early-stopping-patience", 0), v.integer("logging-steps", 1), v.str("resume", null),
                v.path("general-file"), v.dbl("forgetting-threshold", 0.1),
                v.str("quant", "nf4"), v.bool("double-quant", true), v.integer("blocksize", 64), v.str("optim", "adamw"), v.bool("optim-offload", false), v.str("compute-dtype", null),
                v.bool("overwrite", false));
    }

    /** The resolved configuration as key → value (for run_config.json and the start-of-run printout). */
    public Map<String, Object> toMap() {
        var m = new LinkedHashMap<String, Object>();
        Object[] values = {model, data, out, method, r, loraAlpha, loraDropout, String.join(",", targetModules), useRslora, format, promptStyle,
                maxSeqLen, valRatio, valFile, mixFile, mixRatio, skipBadRows, packing, lr, epochs, maxSteps, batchSize, gradAccum, scheduler,
                warmupRatio, warmupSteps, weightDecay, maxGradNorm, seed, gradientCheckpointing, lossChunk, evalSteps, saveSteps, keepBest,
                keepLast, earlyStoppingPatience, loggingSteps, resume, generalFile, forgettingThreshold, quant, doubleQuant, blocksize, optim, optimOffload, computeDtype, overwrite};
        for (int i = 0; i < KEYS.size(); i++) m.put(KEYS.get(i), values[i] instanceof Path p ? p.toString() : values[i]);
        return m;
    }

    private record Values(Map<String, String> m, String source) {
        String str(String k, String d) {
            String s = m.get(k);
            return s == null || s.isEmpty() ? d : s;
        }

        Path path(String k) {
            String s = str(k, null);
            return s == null ? null : Path.of(s);
        }

        int integer(String k, int d) {
            try {
                return m.containsKey(k) ? Integer.parseInt(m.get(k).trim()) : d;
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(source + ": '" + k + "' expects an integer, found '" + m.get(k) + "'");
            }
        }

        double dbl(String k, double d) {
            try {
                return m.containsKey(k) ? Double.parseDouble(m.get(k).trim()) : d;
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(source + ": '" + k + "' expects a number, found '" + m.get(k) + "'");
            }
        }

        boolean bool(String k, boolean d) {
            if (!m.containsKey(k)) return d;
            String s = m.get(k).trim().toLowerCase();
            if (s.equals("true") || s.isEmpty()) return true;
            if (s.equals("false")) return false;
            throw new IllegalArgumentException(source + ": '" + k + "' expects true or false, found '" + m.get(k) + "'");
        }
    }
}
