package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.tune4j.train.TrainConfig;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * {@code tune4j train}: flags generated from {@link TrainConfig#KEYS}, so a YAML/JSON run file uses exactly the flag
 * names as keys; flags given on the command line override the file.
 */
final class TrainCommand {
    private TrainCommand() {}

    static final Map<String, String> HELP = new LinkedHashMap<>();

    static {
        HELP.put("model", "base model folder (HF: config.json, safetensors, tokenizer files)");
        HELP.put("data", "training data: .json array, .jsonl or .txt (alpaca, chat, sharegpt, prompt/completion or text)");
        HELP.put("out", "run folder: run_config.json, metrics.jsonl, checkpoints/, adapter/");
        HELP.put("method", "lora (default), qlora (4-bit base; gradient checkpointing on by default) or full (every weight; the result is a model folder)");
        HELP.put("r", "LoRA rank (default 16)");
        HELP.put("lora-alpha", "LoRA alpha; scale alpha/r (default 32)");
        HELP.put("lora-dropout", "dropout on the LoRA input (default 0.05)");
        HELP.put("target-modules", "comma-separated module names, one regex, or all-linear (default)");
        HELP.put("use-rslora", "scale alpha/sqrt(r) (default false)");
        HELP.put("format", "alpaca | chat | sharegpt | prompt_completion | text (default: detected)");
        HELP.put("prompt-style", "template (the model's chat template; default when it has one) or alpaca");
        HELP.put("max-seq-len", "tokens per example or packed row; longer ones are cut (default 512)");
        HELP.put("val-ratio", "share of records held out for validation (default 0.1)");
        HELP.put("val-file", "validation data instead of a held-out share");
        HELP.put("mix-file", "general text mixed into training");
        HELP.put("mix-ratio", "share of training examples from --mix-file (default 0)");
        HELP.put("skip-bad-rows", "count malformed records as warnings instead of failing");
        HELP.put("packing", "pack several examples per row (attention never crosses them)");
        HELP.put("lr", "peak learning rate (default 2e-4)");
        HELP.put("epochs", "passes over the training data (default 1)");
        HELP.put("max-steps", "optimizer steps; overrides epochs when > 0");
        HELP.put("batch-size", "rows per micro-batch (default 4)");
        HELP.put("grad-accum", "micro-batches per optimizer step (default 1)");
        HELP.put("scheduler", "linear (default) | cosine | cosine_with_restarts | constant_with_warmup | constant");
        HELP.put("warmup-ratio", "share of steps warming up (default 0)");
        HELP.put("warmup-steps", "warmup steps (overrides the ratio when > 0)");
        HELP.put("weight-decay", "AdamW decoupled weight decay (default 0)");
        HELP.put("max-grad-norm", "clip the gradient norm to this (default 1.0)");
        HELP.put("seed", "seed for initialisation, shuffling, split and dropout (default 42)");
        HELP.put("gradient-checkpointing", "recompute each layer in backward instead of keeping activations");
        HELP.put("loss-chunk", "tokens per cross-entropy chunk (default 1024)");
        HELP.put("eval-steps", "evaluate every N steps (default 0: each epoch and at the end)");
        HELP.put("save-steps", "checkpoint every N steps (default 0: at the end)");
        HELP.put("keep-best", "checkpoints kept by best validation loss (default 1)");
        HELP.put("keep-last", "most recent checkpoints kept (default 1)");
        HELP.put("early-stopping-patience", "stop after N evaluations without improvement (default 0: off)");
        HELP.put("logging-steps", "write metrics every N steps (default 1)");
        HELP.put("resume", "continue from a checkpoint folder, or 'latest' under --out");
        HELP.put("general-file", "general text: after training, compare its perplexity with and without the adapter (forgetting check)");
        HELP.put("forgetting-threshold", "flag a relative perplexity increase above this (default 0.1)");
        HELP.put("quant", "qlora: nf4 (default) or fp4");
        HELP.put("compute-dtype", "float32 or bfloat16 activations and frozen weights (default: float32 on CPU, bfloat16 on CUDA)");
        HELP.put("optim-offload", "keep optimizer state in host memory and update there (for GPUs; the CPU build runs the same path)");
        HELP.put("optim", "adamw (default, fp32 state) or adamw8bit (bitsandbytes' blockwise 8-bit state, ~2 bytes/param)");
        HELP.put("double-quant", "qlora: quantize the absmax values too (default true)");
        HELP.put("blocksize", "qlora: elements per quantization block, a power of two in 32..4096 (default 64)");
        HELP.put("stage", "sft (default: completions of instruction/chat data), pt (continued pre-training on raw text), dpo, orpo or simpo (preference pairs)");
        HELP.put("loss-type", "dpo: sigmoid (default), ipo, hinge or robust (TRL's loss_type)");
        HELP.put("beta", "dpo: β, the strength of the pull toward the reference (default 0.1); simpo: β (default 2.0)");
        HELP.put("label-smoothing", "dpo: robust's ε; with sigmoid, TRL ≤ 0.28's conservative DPO (default 0)");
        HELP.put("simpo-gamma", "simpo: the reward margin γ (TRL's simpo_gamma, default 0.5)");
        HELP.put("cpo-alpha", "simpo: weight of an NLL term on the chosen completions (TRL's cpo_alpha; default 0 = pure SimPO)");
        HELP.put("orpo-lambda", "orpo: weight λ of the odds-ratio term (TRL's beta for ORPO, default 0.1)");
        HELP.put("precompute-ref-logps", "dpo: compute the reference log-probs once before training (kept in the run folder; always on for --method full)");
        HELP.put("adapter", "lora/qlora: start from this PEFT adapter (an SFT adapter; for dpo it is also the frozen reference)");
        HELP.put("use-dora", "lora/qlora: DoRA (weight-decomposed LoRA, PEFT's use_dora)");
    }

    static CommandLine build() {
        CommandSpec[] self = new CommandSpec[1];
        CommandSpec spec = CommandSpec.wrapWithoutInspection((java.util.concurrent.Callable<Integer>) () -> run(self[0].commandLine().getParseResult()));
        self[0] = spec;
        spec.name("train").mixinStandardHelpOptions(true);
        spec.usageMessage().description("Fine-tune a model (LoRA, QLoRA or full; SFT, continued pre-training, DPO, ORPO or SimPO) from flags or a YAML/JSON run file; flags override the file.");
        spec.addOption(OptionSpec.builder("--config").paramLabel("FILE").type(Path.class).description("YAML or JSON run file whose keys are the flag names below").build());
        for (String k : TrainConfig.KEYS) {
            boolean flag = List.of("use-rslora", "skip-bad-rows", "packing", "gradient-checkpointing", "double-quant", "optim-offload", "precompute-ref-logps", "use-dora").contains(k);
            spec.addOption(OptionSpec.builder("--" + k).type(String.class).arity(flag ? "0..1" : "1").fallbackValue("true")
                    .paramLabel(flag ? "BOOL" : "VALUE").description(HELP.get(k)).build());
        }
        return new CommandLine(spec).setOverwrittenOptionsAllowed(true); // the last occurrence of a flag wins
    }

    static int run(CommandLine.ParseResult p) {
        var values = new LinkedHashMap<String, String>();
        String source = "command line";
        if (p.hasMatchedOption("--config")) {
            Path file = p.matchedOptionValue("--config", (Path) null);
            values.putAll(readFile(file));
            source = file.toString();
        }
        for (String k : TrainConfig.KEYS) if (p.hasMatchedOption("--" + k)) values.put(k, p.matchedOptionValue("--" + k, ""));
        TrainConfig cfg = TrainConfig.fromMap(values, source);
        try {
            dev.tune4j.recipes.Run.run(cfg, System.out);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
        return 0;
    }

    static Map<String, String> readFile(Path file) {
        JsonNode root;
        try {
            String text = Files.readString(file);
            root = (file.toString().endsWith(".json") ? new ObjectMapper() : new ObjectMapper(new YAMLFactory())).readTree(text);
        } catch (IOException e) {
            throw new Main.BadInput(file + ": cannot read run file: " + e.getMessage());
        }
        if (root == null || !root.isObject()) throw new Main.BadInput(file + ": expected a mapping of flag names to values");
        var m = new LinkedHashMap<String, String>();
        root.properties().forEach(e -> {
            JsonNode v = e.getValue();
            if (v.isArray()) {
                var parts = new ArrayList<String>();
                v.forEach(x -> parts.add(x.asText()));
                m.put(e.getKey(), String.join(",", parts));
            } else if (!v.isNull()) m.put(e.getKey(), v.asText());
        });
        return m;
    }
}
