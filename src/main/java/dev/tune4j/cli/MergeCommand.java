package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.OutputPaths;
import dev.tune4j.peft.Merge;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** LoRA adapters folded into the base weights, written as a plain HF folder, verified before it is published. */
@Command(name = "merge", mixinStandardHelpOptions = true, description = "Merge LoRA adapter(s) into a model and write a verified Hugging Face folder.")
final class MergeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "base model folder")
    Path model;

    @Option(names = "--adapter", required = true, description = "PEFT LoRA adapter folder (repeatable)")
    List<Path> adapters = new ArrayList<>();

    @Option(names = "--weight", description = "weight of each adapter, in --adapter order (default 1 each)")
    List<Double> weights = new ArrayList<>();

    @Option(names = "--out", required = true, description = "output folder (written beside, verified, then renamed)")
    Path out;

    @Option(names = "--overwrite", description = "replace an existing non-empty --out (still built beside it and swapped in)")
    boolean overwrite;

    @Option(names = "--dtype", description = "stored dtype: f32, bf16 or f16 (default: the base model's)")
    String dtype;

    @Option(names = "--max-shard-size", defaultValue = "5GB", description = "shard the weights past this size (default ${DEFAULT-VALUE})")
    String maxShard;

    @Option(names = "--tolerance", description = "largest |logit difference| / logit scale accepted by the verification (default by dtype: f32 1e-4, f16 1e-2, bf16 5e-2)")
    Double tolerance;

    @Override
    public Integer call() throws Exception {
        long shardBytes = parseSize(maxShard);
        DType d = dtype == null ? null : switch (dtype.toLowerCase()) {
            case "f32", "fp32", "float32" -> DType.F32;
            case "bf16", "bfloat16" -> DType.BF16;
            case "f16", "fp16", "float16" -> DType.F16;
            default -> throw new UserError("--dtype: expected f32, bf16 or f16, found '" + dtype + "'");
        };
        var inputs = new ArrayList<Path>(adapters);
        inputs.add(model);
        OutputPaths.check(out, OutputPaths.Kind.FOLDER, overwrite, "pass --overwrite to replace it", inputs);
        // Merge builds and verifies the folder under a staging name beside out and publishes it only once verified
        Merge.Result r = Merge.run(model, adapters, weights, out, d, shardBytes, tolerance, System.err, // its phases (load, merge, write, verify) with their times
                (task, total) -> { // and a bar for each long one
                    var bar = dev.tune4j.train.StepProgress.bytes(task, total);
                    return new Merge.Meter() {
                        public void add(long bytes) { bar.step(bytes); }

                        public void close() { bar.close(); }
                    };
                });
        System.out.printf("merged %d adapter(s) (%d modules) into %s as %s; verified: max |Δlogit| / logit scale = %.3g ≤ %.3g%n", adapters.size(),
                r.modules(), out, r.dtype(), r.relativeLogitDiff(), r.tolerance());
        return 0;
    }

    /** "5GB", "150KB", "2000000" → bytes (decimal units, as transformers' max_shard_size). */
    static long parseSize(String s) {
        var m = java.util.regex.Pattern.compile("(?i)\\s*([0-9.]+)\\s*(kb|mb|gb|b)?\\s*").matcher(s);
        if (!m.matches()) throw new UserError("--max-shard-size: expected a size such as 5GB or 500MB, found '" + s + "'");
        double v;
        try {
            v = Double.parseDouble(m.group(1));
        } catch (NumberFormatException e) {
            throw new UserError("--max-shard-size: expected a size such as 5GB or 500MB, found '" + s + "'");
        }
        String u = m.group(2) == null ? "b" : m.group(2).toLowerCase();
        long bytes = (long) (v * switch (u) {
            case "kb" -> 1e3;
            case "mb" -> 1e6;
            case "gb" -> 1e9;
            default -> 1;
        });
        if (bytes < 1) throw Limits.bad("--max-shard-size", "a size of at least 1 byte, such as 5GB or 500MB", "'" + s + "'");
        return bytes;
    }
}
