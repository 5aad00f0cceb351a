package dev.tune4j.cli;

import dev.tune4j.hf.OutputPaths;
import dev.tune4j.quant.QuantizeFolder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** A model folder rewritten in bitsandbytes' 4-bit layout, loadable by transformers and by tune4j's QLoRA. */
@Command(name = "quantize", mixinStandardHelpOptions = true, description = "Write a bitsandbytes 4-bit (NF4/FP4) copy of a model folder.")
final class QuantizeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "model folder (fp32/bf16/fp16)")
    Path model;

    @Option(names = "--out", required = true, description = "output folder")
    Path out;

    @Option(names = "--overwrite", description = "replace an existing non-empty --out (still built beside it and swapped in)")
    boolean overwrite;

    @Option(names = "--quant", defaultValue = "nf4", description = "nf4 (default) or fp4")
    String quant;

    @Option(names = "--double-quant", defaultValue = "true", arity = "0..1", fallbackValue = "true", description = "quantize the absmax values too (default ${DEFAULT-VALUE})")
    boolean doubleQuant;

    @Option(names = "--blocksize", defaultValue = "64", description = "elements per block, a power of two in 32..4096 (default ${DEFAULT-VALUE})")
    int blocksize;

    @Override
    public Integer call() throws Exception {
        if (blocksize < 32 || blocksize > 4096 || Integer.bitCount(blocksize) != 1) throw Limits.bad("--blocksize", "a power of two in [32, 4096]", blocksize);
        OutputPaths.check(out, OutputPaths.Kind.FOLDER, overwrite, "pass --overwrite to replace it", java.util.List.of(model));
        var r = QuantizeFolder.run(model, out, quant, blocksize, doubleQuant, 5_000_000_000L);
        double ratio = (double) r.quantizedBytes() / r.denseBytes();
        System.out.printf("wrote %s: %d projections in %s%s, %.1f MiB → %.1f MiB (%.3f of fp32, %.3f bits per parameter)%n", out, r.tensors(), quant,
                doubleQuant ? " + double quantization" : "", r.denseBytes() / 1048576.0, r.quantizedBytes() / 1048576.0, ratio, 32 * ratio);
        return 0;
    }
}
