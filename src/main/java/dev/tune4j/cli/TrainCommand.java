package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.tune4j.hf.OutputPaths;
import dev.tune4j.recipes.LoraSft;
import dev.tune4j.train.Checkpoints;
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
        HELP.put("resume", "continue from a checkpoint folder, or 'latest' under --out (the default when --resume has no value); an incomplete latest checkpoint is set aside with a warning");
        HELP.put("general-file", "general text: after training, compare its perplexity with and without the adapter (forgetting check)");
        HELP.put("forgetting-threshold", "flag a relative perplexity increase above this (default 0.1)");
        HELP.put("quant", "qlora: nf4 (default) or fp4");
        HELP.put("compute-dtype", "float32 or bfloat16 activations and frozen weights (default: float32 on CPU, bfloat16 on CUDA)");
        HELP.put("optim-offload", "keep optimizer state in host memory and update there (for GPUs; the CPU build runs the same path)");
        HELP.put("optim", "adamw (default, fp32 state) or adamw8bit (bitsandbytes' blockwise 8-bit state, ~2 bytes/param)");
        HELP.put("double-quant", "qlora: quantize the absmax values too (default true)");
        HELP.put("blocksize", "qlora: elements per quantization block, a power of two in 32..4096 (default 64)");
        HELP.put("overwrite", "replace an existing non-empty --out (its old checkpoints and metrics are removed); without it, or --resume, an existing run is refused");
    }

    static CommandLine build() {
        CommandSpec[] self = new CommandSpec[1];
        CommandSpec spec = CommandSpec.wrapWithoutInspection((java.util.concurrent.Callable<Integer>) () -> run(self[0].commandLine().getParseResult()));
        self[0] = spec;
        spec.name("train").mixinStandardHelpOptions(true);
        spec.usageMessage().description("Fine-tune a model (LoRA SFT) from flags or a YAML/JSON run file; flags override the file.");
        spec.addOption(OptionSpec.builder("--config").paramLabel("FILE").type(Path.class).description("YAML or JSON run file whose keys are the flag names below").build());
        for (String k : TrainConfig.KEYS) {
            boolean flag = List.of("use-rslora", "skip-bad-rows", "packing", "gradient-checkpointing", "double-quant", "optim-offload", "overwrite").contains(k);
            boolean resume = k.equals("resume"); // --resume alone means latest (transformers' resume_from_checkpoint=True)
            spec.addOption(OptionSpec.builder("--" + k).type(String.class).arity(flag || resume ? "0..1" : "1").fallbackValue(resume ? "latest" : "true")
                    .paramLabel(flag ? "BOOL" : resume ? "latest|DIR" : "VALUE").description(HELP.get(k)).build());
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
        String resume = values.get("resume");
        if (resume != null && (resume.isEmpty() || resume.equalsIgnoreCase("true"))) values.put("resume", "latest");
        if (resume != null && resume.equalsIgnoreCase("false")) values.remove("resume");
        TrainConfig cfg = TrainConfig.fromMap(values, source);
        boolean created = !Files.exists(cfg.out());
        try {
            Path from = prepareRunFolder(cfg, p.matchedOptionValue("--config", (Path) null));
            if (from != null) {
                values.put("resume", from.toString());
                cfg = TrainConfig.fromMap(values, source);
            }
            if (cfg.method().equals("full")) dev.tune4j.recipes.FullSft.run(cfg, System.out);
            else LoraSft.run(cfg, System.out);
        } catch (IOException e) {
            throw new RuntimeException(e);
        } catch (RuntimeException e) {
            if (created) removeIfOnlyConfig(cfg.out());
            throw e;
        }
        return 0;
    }

    /** A run that failed before its first checkpoint (bad data, a bad flag) leaves no folder it created behind. */
    static void removeIfOnlyConfig(Path out) {
        try (var s = Files.list(out)) {
            if (s.allMatch(p -> p.getFileName().toString().equals("run_config.json"))) dev.tune4j.hf.AtomicFiles.deleteTree(out);
        } catch (IOException e) {
            // leave it: it is named in the error the user sees anyway
        }
    }

    /**
     * Before the model is loaded: the run folder is checked (an existing run needs --resume or --overwrite; no overlap
     * with an input; writable), the checkpoint to resume is chosen and checked, and only then is an old run replaced.
     * Returns the checkpoint to resume from, or null.
     */
    static Path prepareRunFolder(TrainConfig c, Path configFile) throws IOException {
        var inputs = Arrays.asList(c.model(), c.data(), c.valFile(), c.mixFile(), c.generalFile(), configFile);
        var checked = OutputPaths.check(c.out(), OutputPaths.Kind.FOLDER, c.overwrite() || c.resume() != null,
                "pass --resume to continue the run in it, or --overwrite to replace it", inputs);
        Path from = null;
        if (c.resume() != null) {
            if (c.overwrite() && (c.resume().equals("latest") || OutputPaths.real(Path.of(c.resume())).startsWith(checked.real())))
                throw new Main.BadInput("--overwrite would delete the checkpoint that --resume " + c.resume() + " continues from (in " + c.out() + "); give one of them");
            if (c.resume().equals("latest")) {
                from = new Checkpoints(c.out(), c.keepBest(), c.keepLast()).latestGood(System.out::println);
                if (from == null) throw new Main.BadInput("--resume latest: no complete checkpoint under " + c.out().resolve("checkpoints"));
            } else {
                from = Path.of(c.resume());
                String why = Checkpoints.problem(from);
                if (why != null) throw new Main.BadInput("--resume " + from + ": not a complete checkpoint: " + why);
            }
            var st = Checkpoints.readState(from);
            if (c.maxSteps() > 0 && c.maxSteps() <= st.step())
                throw new Main.BadInput("--resume " + from + " is at step " + st.step() + " and --max-steps is " + c.maxSteps()
                        + ": nothing left to train (give --max-steps above " + st.step() + ")");
            if (c.maxSteps() <= 0 && st.epoch() >= c.epochs())
                throw new Main.BadInput("--resume " + from + " is at epoch " + st.epoch() + " and --epochs is " + c.epochs()
                        + ": nothing left to train (raise --epochs or give --max-steps)");
            dropCutLastLine(c.out().resolve("metrics.jsonl"));
        }
        if (c.overwrite() && checked.hasContent()) {
            OutputPaths.clearFolder(c.out());
            System.out.println("--overwrite: removed the previous contents of " + c.out());
        }
        return from;
    }

    /** A run killed while writing metrics.jsonl leaves a cut last line; the resumed run would append to it and break both records. */
    static void dropCutLastLine(Path metrics) throws IOException {
        if (!Files.isRegularFile(metrics) || Files.size(metrics) == 0) return;
        try (var ch = java.nio.channels.FileChannel.open(metrics, java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE)) {
            long end = ch.size();
            var one = java.nio.ByteBuffer.allocate(1);
            ch.read(one, end - 1);
            if (one.get(0) == '\n') return;
            long keep = end - 1;
            for (; keep > 0; keep--) {
                one.clear();
                ch.read(one, keep - 1);
                if (one.get(0) == '\n') break;
            }
            ch.truncate(keep);
            System.out.println("warning: " + metrics + " ended in a cut line (the run was killed while writing it); removed its " + (end - keep) + " bytes");
        }
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
