package dev.tune4j.train;

import dev.tune4j.hf.UserError;
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
        Path generalFile, double forgettingThreshold, int samples,
        // QLoRA
        String quant, boolean doubleQuant, int blocksize, String optim, boolean optimOffload, String computeDtype,
        // stage and preference training, DoRA, initial adapter
        String stage, String lossType, double beta, double labelSmoothing, double simpoGamma, double cpoAlpha, double orpoLambda,
        boolean precomputeRefLogps, Path adapter, boolean useDora, double desirableWeight, double undesirableWeight,
        // output safety
        boolean overwrite,
        // data parallel
        int nprocPerNode, int zero, int distTimeout,
        // evaluation
        int maxEvalSamples) {

    /** Positions per chunk of the LM head by default (the logits of at most this many exist at once). */
    public static final int LOSS_CHUNK = 128;

    /** What kind of value a key takes (and so how a flag parses it). */
    public enum Kind {PATH, TEXT, INT, NUMBER, BOOL, LIST}

    /**
     * One configuration key: its name (the long flag, the YAML key and the run_config.json key), kind, default (null =
     * none; "*" = depends on other keys, as the help says), help, and the methods/stages it applies to (empty = all).
     */
    public record Key(String name, Kind kind, String defaultValue, String help, Set<String> appliesTo) {
        public String describe() {
            String d = defaultValue == null || defaultValue.equals("*") ? "" : " (default " + defaultValue + ")";
            String w = appliesTo.isEmpty() ? "" : " [" + String.join(", ", new TreeSet<>(appliesTo)) + "]";
            return help + d + w;
        }
    }

    private static final Set<String> ALL = Set.of(), ADAPTERS = Set.of("lora", "qlora"), QLORA = Set.of("qlora"),
            TOKENS = Set.of("sft", "pt"), PROMPTED = Set.of("sft", "dpo", "kto", "orpo", "simpo"), DPO = Set.of("dpo"), KTO = Set.of("kto");

    /** max-eval-samples left to the run: 64, but no more than half of the examples it trains on, and at least 8 ({@link #evalExamples}). */
    public static final int AUTO = -1;

    /**
     * How many validation examples a run evaluates: --max-eval-samples as given (0: all); by default 64, but no more
     * than half of what the run trains on ({@code trained}: examples over all steps and processes) and at least 8. A
     * forward pass costs about a third of a training step, so each validation pass then costs at most about a sixth of
     * training.
     */
    public int evalExamples(long trained) {
        if (maxEvalSamples != AUTO) return maxEvalSamples;
        return (int) Math.max(8, Math.min(64, trained / 2));
    }

    /** The examples a run trains on: max-steps × batch-size × grad-accum × processes ({@code world}), or epochs × the training split. */
    public long trainedExamples(long trainSplit, int world) {
        return maxSteps > 0 ? (long) maxSteps * batchSize * gradAccum * world : epochs * trainSplit;
    }

    private static int evalSamples(Values v, String given) {
        if (given == null || given.strip().equalsIgnoreCase("auto")) return AUTO; // run_config.json says "auto"
        int n;
        try {
            n = Integer.parseInt(given.strip());
        } catch (NumberFormatException e) {
            throw new UserError(v.source() + ": 'max-eval-samples' expects an integer or auto, found " + (given.isBlank() ? "nothing" : "'" + given + "'"));
        }
        if (n < 0) throw new UserError("max-eval-samples must be >= 0 (0: every validation example), found " + n);
        return n;
    }

    /** The one table of keys: flags, YAML keys, --help and run_config.json are all generated from it, in this order. */
    public static final List<Key> TABLE = List.of(
            new Key("model", Kind.PATH, null, "base model folder (HF: config.json, safetensors, tokenizer files)", ALL),
            new Key("data", Kind.PATH, null, "training data: .json array, .jsonl or .txt (alpaca, chat, sharegpt, prompt/completion, text; preference pairs for dpo/orpo/simpo)", ALL),
            new Key("out", Kind.PATH, null, "run folder: run_config.json, metrics.jsonl, checkpoints/, adapter/ or model/", ALL),
            new Key("method", Kind.TEXT, "lora", "lora, qlora (4-bit base; gradient checkpointing on by default) or full (every weight; the result is a model folder)", ALL),
            new Key("stage", Kind.TEXT, "sft", "sft (completions of instruction/chat data), pt (continued pre-training on raw text), dpo, orpo or simpo (preference pairs), kto (unpaired labelled completions)", ALL),
            new Key("r", Kind.INT, "16", "LoRA rank", ADAPTERS),
            new Key("lora-alpha", Kind.NUMBER, "32", "LoRA alpha; scale alpha/r", ADAPTERS),
            new Key("lora-dropout", Kind.NUMBER, "0.05", "dropout on the LoRA input", ADAPTERS),
            new Key("target-modules", Kind.LIST, "all-linear", "comma-separated module names, one regex, or all-linear", ADAPTERS),
            new Key("use-rslora", Kind.BOOL, "false", "scale alpha/sqrt(r)", ADAPTERS),
            new Key("use-dora", Kind.BOOL, "false", "DoRA (weight-decomposed LoRA, PEFT's use_dora)", ADAPTERS),
            new Key("adapter", Kind.PATH, null, "start from this PEFT adapter (an SFT adapter; for dpo also the frozen reference)", ADAPTERS),
            new Key("format", Kind.TEXT, null, "data format (default: detected): alpaca | chat | sharegpt | prompt_completion | text; for pairs see the README", ALL),
            new Key("prompt-style", Kind.TEXT, "*", "template (the model's chat template; the default when it has one) or alpaca", PROMPTED),
            new Key("max-seq-len", Kind.INT, "512", "tokens per example, packed row or pair completion (prompt + answer); longer ones are cut", ALL),
            new Key("val-ratio", Kind.NUMBER, "0.1", "share of records held out for validation", ALL),
            new Key("val-file", Kind.PATH, null, "validation data instead of a held-out share", ALL),
            new Key("mix-file", Kind.PATH, null, "general text mixed into training", TOKENS),
            new Key("mix-ratio", Kind.NUMBER, "0", "share of training examples from --mix-file", TOKENS),
            new Key("skip-bad-rows", Kind.BOOL, "false", "count malformed records as warnings instead of failing", ALL),
            new Key("packing", Kind.BOOL, "false", "pack several examples per row (attention never crosses them)", TOKENS),
            new Key("lr", Kind.NUMBER, "*", "peak learning rate (default 2e-4; 5e-5 for dpo/kto/orpo/simpo)", ALL),
            new Key("epochs", Kind.INT, "1", "passes over the training data", ALL),
            new Key("max-steps", Kind.INT, "-1", "optimizer steps; overrides epochs when > 0", ALL),
            new Key("batch-size", Kind.INT, "4", "rows (pairs for preference stages) per micro-batch", ALL),
            new Key("grad-accum", Kind.INT, "1", "micro-batches per optimizer step", ALL),
            new Key("scheduler", Kind.TEXT, "linear", "linear | cosine | cosine_with_restarts | constant_with_warmup | constant", ALL),
            new Key("warmup-ratio", Kind.NUMBER, "0", "share of steps warming up", ALL),
            new Key("warmup-steps", Kind.INT, "0", "warmup steps (overrides the ratio when > 0)", ALL),
            new Key("weight-decay", Kind.NUMBER, "0", "AdamW decoupled weight decay (matrices only for full fine-tuning)", ALL),
            new Key("max-grad-norm", Kind.NUMBER, "1.0", "clip the gradient norm to this", ALL),
            new Key("seed", Kind.INT, "42", "seed for initialisation, shuffling, split and dropout", ALL),
            new Key("gradient-checkpointing", Kind.BOOL, "*", "recompute each layer in backward instead of keeping activations (default: on for qlora)", ALL),
            new Key("loss-chunk", Kind.INT, "" + LOSS_CHUNK, "positions per chunk of the LM head (logits never exist for more at once)", ALL),
            new Key("eval-steps", Kind.INT, "0", "evaluate every N steps (0: each epoch and at the end)", ALL),
            new Key("save-steps", Kind.INT, "0", "checkpoint every N steps (0: at the end)", ALL),
            new Key("keep-best", Kind.INT, "1", "checkpoints kept by best validation loss", ALL),
            new Key("keep-last", Kind.INT, "1", "most recent checkpoints kept", ALL),
            new Key("max-eval-samples", Kind.INT, "*", "validation examples (pairs) evaluated, the first ones of the split; 0: all (default 64, but no more than half of what the run trains on, and at least 8: each validation pass then costs at most about a sixth of training, so a 4-step smoke run is not mostly validation; HF's max_eval_samples: a 10 % split of a large set would cost more than training)", ALL),
            new Key("early-stopping-patience", Kind.INT, "0", "stop after N evaluations without improvement (0: off)", ALL),
            new Key("logging-steps", Kind.INT, "1", "write metrics every N steps", ALL),
            new Key("resume", Kind.TEXT, null, "continue from a checkpoint folder, or 'latest' under --out (given alone: latest)", ALL),
            new Key("overwrite", Kind.BOOL, "false", "replace an existing run folder (moved aside, then removed) instead of refusing it", ALL),
            new Key("general-file", Kind.PATH, null, "general text: its perplexity before and after training (forgetting check)", ALL),
            new Key("forgetting-threshold", Kind.NUMBER, "0.1", "flag a relative perplexity increase above this", ALL),
            new Key("samples", Kind.INT, "3", "validation prompts the model answers after training, shown in report.html (0: skip generation)", PROMPTED),
            new Key("quant", Kind.TEXT, "nf4", "nf4 or fp4", QLORA),
            new Key("double-quant", Kind.BOOL, "true", "quantize the absmax values too", QLORA),
            new Key("blocksize", Kind.INT, "64", "elements per quantization block, a power of two in 32..4096", QLORA),
            new Key("optim", Kind.TEXT, "adamw", "adamw (fp32 state) or adamw8bit (bitsandbytes' blockwise 8-bit state, ~2 bytes/param)", ALL),
            new Key("optim-offload", Kind.BOOL, "false", "keep optimizer state in host memory and update there (for GPUs; the CPU build runs the same path)", ALL),
            new Key("compute-dtype", Kind.TEXT, null, "float32, or bfloat16 (CUDA: bf16 activations and frozen weights; CPU: bf16 GEMMs over fp32 activations). Default: bfloat16 on CUDA, and on CPUs with bf16 dot products for models of hidden size ≥ 512; float32 otherwise", ALL),
            new Key("loss-type", Kind.TEXT, "sigmoid", "sigmoid, ipo, hinge or robust (TRL's loss_type)", DPO),
            new Key("beta", Kind.NUMBER, "*", "DPO's and KTO's beta, the pull toward the reference (default 0.1); SimPO's beta (default 2.0)", Set.of("dpo", "kto", "simpo")),
            new Key("label-smoothing", Kind.NUMBER, "0", "robust DPO's epsilon; with sigmoid, TRL <= 0.28's conservative DPO", DPO),
            new Key("precompute-ref-logps", Kind.BOOL, "false", "compute the reference log-probs once before training, kept in the run folder (always on for --method full)", DPO),
            new Key("desirable-weight", Kind.NUMBER, "1.0", "weight of the desirable examples' losses (TRL's desirable_weight)", KTO),
            new Key("undesirable-weight", Kind.NUMBER, "1.0", "weight of the undesirable examples' losses (TRL's undesirable_weight)", KTO),
            new Key("simpo-gamma", Kind.NUMBER, "0.5", "SimPO's reward margin gamma (TRL's simpo_gamma)", Set.of("simpo")),
            new Key("cpo-alpha", Kind.NUMBER, "0", "weight of an NLL term on the chosen completions (TRL's cpo_alpha; 0 = pure SimPO)", Set.of("simpo")),
            new Key("orpo-lambda", Kind.NUMBER, "0.1", "weight of the odds-ratio term (TRL's beta for ORPO)", Set.of("orpo")),
            new Key("nproc-per-node", Kind.INT, "1", "data-parallel worker processes to start on this machine, like torchrun (--batch-size is per process); under a launcher that sets RANK/WORLD_SIZE, leave it out", ALL),
            new Key("zero", Kind.INT, "0", "ZeRO stage for data parallel: 0 (every rank keeps all optimizer state), 1 (optimizer state partitioned), 2 (gradients too)", ALL),
            new Key("dist-timeout", Kind.INT, "1800", "seconds the rendezvous waits for every worker, and a collective for its peers", ALL));

    /** Every key a file or flag may set, in table order. */
    public static final List<String> KEYS = TABLE.stream().map(Key::name).toList();

    static Key key(String name) {
        for (Key k : TABLE) if (k.name().equals(name)) return k;
        throw new IllegalStateException("no key " + name);
    }

    /** sft (default), pt (continued pre-training on raw text), or a preference stage. */
    public static final List<String> STAGES = List.of("sft", "pt", "dpo", "kto", "orpo", "simpo");

    public boolean preference() {
        return !stage.equals("sft") && !stage.equals("pt");
    }

    public TrainConfig {
        if (!Set.of("lora", "qlora", "full").contains(method)) throw new UserError("method: expected lora, qlora or full, found '" + method + "'");
        if (computeDtype != null && !Set.of("float32", "bfloat16").contains(computeDtype))
            throw new UserError("compute-dtype: expected float32 or bfloat16, found '" + computeDtype + "'");
        if (!Set.of("adamw", "adamw8bit").contains(optim)) throw new UserError("optim: expected adamw or adamw8bit, found '" + optim + "'");
        if (!Set.of("nf4", "fp4").contains(quant)) throw new UserError("quant: expected nf4 or fp4, found '" + quant + "'");
        if (batchSize < 1 || gradAccum < 1) throw new UserError("batch-size and grad-accum must be >= 1");
        if (epochs < 1 && maxSteps < 1) throw new UserError("need epochs >= 1 or max-steps >= 1");
        if (!(lr > 0)) throw new UserError("lr must be positive, found " + lr);
        if (keepBest < 0 || keepLast < 0) throw new UserError("keep-best and keep-last must be >= 0");
        if (samples < 0) throw new UserError("samples must be >= 0 (0 skips them), found " + samples);
        if (!STAGES.contains(stage)) throw new UserError("stage: expected one of " + STAGES + ", found '" + stage + "'");
        if (stage.equals("dpo") && !Set.of("sigmoid", "ipo", "hinge", "robust").contains(lossType))
            throw new UserError("loss-type: expected sigmoid, ipo, hinge or robust for --stage dpo, found '" + lossType + "'"
                    + (Set.of("simpo", "orpo").contains(lossType) ? " (use --stage " + lossType + ")" : ""));
        // the preference keys are checked here, by name, so a run file's later stage fails before its first stage trains
        if (Set.of("dpo", "kto", "simpo").contains(stage) && !(beta > 0 && Double.isFinite(beta))) throw new UserError("beta must be positive, found " + beta);
        if (stage.equals("orpo") && !(orpoLambda > 0 && Double.isFinite(orpoLambda))) throw new UserError("orpo-lambda must be positive, found " + orpoLambda);
        if (stage.equals("dpo") && !(labelSmoothing >= 0 && labelSmoothing < 0.5)) throw new UserError("label-smoothing must be in [0, 0.5), found " + labelSmoothing);
        if (stage.equals("dpo") && labelSmoothing > 0 && !Set.of("sigmoid", "robust").contains(lossType))
            throw new UserError("label-smoothing applies to --loss-type robust (and sigmoid, as conservative DPO), not to " + lossType);
        if (stage.equals("simpo") && !(cpoAlpha >= 0)) throw new UserError("cpo-alpha must be >= 0, found " + cpoAlpha);
        if (stage.equals("kto")) {
            if (!(desirableWeight >= 0) || !(undesirableWeight >= 0) || desirableWeight + undesirableWeight == 0)
                throw new UserError("desirable-weight and undesirable-weight must be >= 0 and not both 0, found " + desirableWeight + " and " + undesirableWeight);
            if (batchSize < 2) throw new UserError("batch-size must be >= 2 for --stage kto: its KL estimate pairs each prompt with another example's completion in the batch (TRL refuses 1 too)");
        }
        if (lossChunk < 1) throw new UserError("loss-chunk must be >= 1 (positions per chunk of the LM head), found " + lossChunk);
        if (nprocPerNode < 1 || nprocPerNode > 1024) throw new UserError("nproc-per-node must be from 1 to 1024, found " + nprocPerNode);
        if (zero < 0 || zero > 2) throw new UserError("zero must be 0, 1 or 2, found " + zero);
        if (zero > 0 && !optim.equals("adamw")) throw new UserError("zero " + zero + " partitions AdamW's fp32 state; --optim " + optim + " keeps its own layout: use --optim adamw, or --zero 0");
        if (maxEvalSamples < AUTO) throw new UserError("max-eval-samples must be >= 0 (0: every validation example), found " + maxEvalSamples);
        if (distTimeout < 1) throw new UserError("dist-timeout must be >= 1 second, found " + distTimeout);
        targetModules = List.copyOf(targetModules);
    }

    /** Builds a config from string values by key (file values and flags merged by the caller); unknown keys are errors. */
    public static TrainConfig fromMap(Map<String, String> m, String source) {
        for (String k : m.keySet())
            if (!KEYS.contains(k)) throw new UserError(source + ": unknown key '" + k + "' (keys are the long flag names: " + String.join(", ", KEYS) + ")");
        String method = m.getOrDefault("method", "lora"), stage = m.getOrDefault("stage", "sft");
        for (String k : m.keySet()) {
            Set<String> where = key(k).appliesTo();
            if (!where.isEmpty() && !where.contains(method) && !where.contains(stage))
                throw new UserError(source + ": '" + k + "' applies to " + String.join("/", new TreeSet<>(where)) + ", not to method " + method + ", stage " + stage);
        }
        var v = new Values(m, source);
        if (v.str("model") == null || v.str("data") == null || v.str("out") == null)
            throw new UserError(source + ": model, data and out are required");
        boolean pref = List.of("dpo", "kto", "orpo", "simpo").contains(stage);
        return new TrainConfig(v.path("model"), v.path("data"), v.path("out"), method,
                v.integer("r"), v.dbl("lora-alpha"), v.dbl("lora-dropout"), List.of(v.str("target-modules").split("\\s*,\\s*")), v.bool("use-rslora"),
                v.str("format"), m.containsKey("prompt-style") ? v.str("prompt-style") : null, v.integer("max-seq-len"), v.dbl("val-ratio"),
                v.path("val-file"), v.path("mix-file"), v.dbl("mix-ratio"), v.bool("skip-bad-rows"), v.bool("packing"),
                m.containsKey("lr") ? v.dbl("lr") : pref ? 5e-5 : 2e-4, v.integer("epochs"), v.integer("max-steps"), v.integer("batch-size"), v.integer("grad-accum"),
                v.str("scheduler").replace('-', '_'), v.dbl("warmup-ratio"), v.integer("warmup-steps"), v.dbl("weight-decay"),
                v.dbl("max-grad-norm"), v.integer("seed"), m.containsKey("gradient-checkpointing") ? v.bool("gradient-checkpointing") : method.equals("qlora"), v.integer("loss-chunk"),
                v.integer("eval-steps"), v.integer("save-steps"), v.integer("keep-best"), v.integer("keep-last"),
                v.integer("early-stopping-patience"), v.integer("logging-steps"), v.str("resume"),
                v.path("general-file"), v.dbl("forgetting-threshold"), v.integer("samples"),
                v.str("quant"), v.bool("double-quant"), v.integer("blocksize"), v.str("optim"), v.bool("optim-offload"), v.str("compute-dtype"),
                stage, v.str("loss-type"), m.containsKey("beta") ? v.dbl("beta") : stage.equals("simpo") ? 2.0 : 0.1, v.dbl("label-smoothing"), v.dbl("simpo-gamma"),
                v.dbl("cpo-alpha"), v.dbl("orpo-lambda"), v.bool("precompute-ref-logps"), v.path("adapter"), v.bool("use-dora"),
                v.dbl("desirable-weight"), v.dbl("undesirable-weight"), v.bool("overwrite"),
                v.integer("nproc-per-node"), v.integer("zero"), v.integer("dist-timeout"), evalSamples(v, m.get("max-eval-samples")));
    }

    /** Whether a key means something for this run's method and stage (those that do not are left out of run_config.json). */
    public boolean applies(String key) {
        Set<String> where = key(key).appliesTo();
        return where.isEmpty() || where.contains(method) || where.contains(stage);
    }

    /** The resolved configuration as key → value (for run_config.json and the start-of-run printout). */
    public Map<String, Object> toMap() {
        var v = new HashMap<String, Object>();
        Object[] pairs = {"model", model, "data", data, "out", out, "method", method, "stage", stage, "r", r, "lora-alpha", loraAlpha,
                "lora-dropout", loraDropout, "target-modules", String.join(",", targetModules), "use-rslora", useRslora, "use-dora", useDora,
                "adapter", adapter, "format", format, "prompt-style", promptStyle, "max-seq-len", maxSeqLen, "val-ratio", valRatio, "val-file", valFile,
                "mix-file", mixFile, "mix-ratio", mixRatio, "skip-bad-rows", skipBadRows, "packing", packing, "lr", lr, "epochs", epochs,
                "max-steps", maxSteps, "batch-size", batchSize, "grad-accum", gradAccum, "scheduler", scheduler, "warmup-ratio", warmupRatio,
                "warmup-steps", warmupSteps, "weight-decay", weightDecay, "max-grad-norm", maxGradNorm, "seed", seed,
                "gradient-checkpointing", gradientCheckpointing, "loss-chunk", lossChunk, "eval-steps", evalSteps, "save-steps", saveSteps,
                "keep-best", keepBest, "keep-last", keepLast, "early-stopping-patience", earlyStoppingPatience, "logging-steps", loggingSteps,
                "resume", resume, "general-file", generalFile, "forgetting-threshold", forgettingThreshold, "samples", samples, "quant", quant, "double-quant", doubleQuant,
                "blocksize", blocksize, "optim", optim, "optim-offload", optimOffload, "compute-dtype", computeDtype, "loss-type", lossType,
                "beta", beta, "label-smoothing", labelSmoothing, "precompute-ref-logps", precomputeRefLogps, "simpo-gamma", simpoGamma,
                "cpo-alpha", cpoAlpha, "orpo-lambda", orpoLambda, "desirable-weight", desirableWeight, "undesirable-weight", undesirableWeight, "overwrite", overwrite,
                "nproc-per-node", nprocPerNode, "zero", zero, "dist-timeout", distTimeout, "max-eval-samples", maxEvalSamples == AUTO ? "auto" : maxEvalSamples};
        for (int i = 0; i < pairs.length; i += 2) v.put((String) pairs[i], pairs[i + 1] instanceof Path p ? p.toString() : pairs[i + 1]);
        if (v.size() != TABLE.size()) throw new IllegalStateException("toMap names " + v.size() + " keys, the table has " + TABLE.size());
        var m = new LinkedHashMap<String, Object>();
        for (Key k : TABLE) if (applies(k.name())) m.put(k.name(), v.get(k.name()));
        return m;
    }

    /** String values by key, with the table's defaults; a value of the wrong kind is an error naming the key. */
    private record Values(Map<String, String> m, String source) {
        String str(String k) {
            String s = m.get(k);
            if (s == null || s.isEmpty()) s = key(k).defaultValue();
            return "*".equals(s) ? null : s;
        }

        Path path(String k) {
            String s = str(k);
            return s == null ? null : Path.of(s);
        }

        int integer(String k) {
            try {
                return Integer.parseInt(str(k).trim());
            } catch (NumberFormatException e) {
                throw new UserError(source + ": '" + k + "' expects an integer, found '" + m.get(k) + "'");
            }
        }

        double dbl(String k) {
            try {
                return Double.parseDouble(str(k).trim());
            } catch (NumberFormatException e) {
                throw new UserError(source + ": '" + k + "' expects a number, found '" + m.get(k) + "'");
            }
        }

        boolean bool(String k) {
            String s = m.containsKey(k) ? m.get(k).trim().toLowerCase(Locale.ROOT) : key(k).defaultValue();
            if (s.equals("true") || s.isEmpty()) return true;
            if (s.equals("false")) return false;
            throw new UserError(source + ": '" + k + "' expects true or false, found '" + m.get(k) + "'");
        }
    }
}
