package dev.tune4j.cli;

import dev.tune4j.hf.Llama2cImport;
import dev.tune4j.hf.OutputPaths;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** Format conversions into Hugging Face folders. */
@Command(name = "convert", mixinStandardHelpOptions = true, description = "Convert models into Hugging Face folders.",
        subcommands = ConvertCommand.Llama2c.class)
final class ConvertCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    @Command(name = "llama2c", mixinStandardHelpOptions = true, description = "llama2.c checkpoint + tokenizer.bin → HF Llama folder (weights, config, tokenizer.json).")
    static final class Llama2c implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "llama2.c checkpoint (.bin, legacy run.c format)")
        Path model;

        @Option(names = "--tokenizer", required = true, description = "llama2.c tokenizer.bin (e.g. tok512.bin)")
        Path tokenizer;

        @Option(names = "--out", required = true, description = "output folder (written to a temporary folder, then renamed)")
        Path out;

        @Option(names = "--overwrite", description = "replace an existing non-empty --out (still built beside it and swapped in)")
        boolean overwrite;

        @Override
        public Integer call() throws Exception {
            OutputPaths.check(out, OutputPaths.Kind.FOLDER, overwrite, "pass --overwrite to replace it", java.util.List.of(model, tokenizer));
            Llama2cImport.convert(model, tokenizer, out);
            System.out.println("wrote " + out + " (config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json)");
            return 0;
        }
    }
}
