package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.Gguf;
import dev.tune4j.hf.OutputPaths;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** Exports to other runtimes' formats. */
@Command(name = "export", mixinStandardHelpOptions = true, description = "Export a model to other formats.", subcommands = ExportCommand.GgufExport.class)
final class ExportCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    @Command(name = "gguf", mixinStandardHelpOptions = true, description = "Write a llama.cpp GGUF file (F32, F16 or Q8_0) with the tokenizer; re-read and validated.")
    static final class GgufExport implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "model folder (merge adapters first with tune4j merge)")
        Path model;

        @Option(names = "--out", required = true, description = "output .gguf file")
        Path out;

        @Option(names = "--overwrite", description = "replace an existing non-empty --out file (written beside it, validated, then renamed over it)")
        boolean overwrite;

        @Option(names = "--dtype", defaultValue = "f16", description = "f32, f16 or q8_0 (default ${DEFAULT-VALUE}); norms stay f32")
        String dtype;

        @Override
        public Integer call() throws Exception {
            Gguf.Type t = switch (dtype.toLowerCase()) {
                case "f32" -> Gguf.Type.F32;
                case "f16" -> Gguf.Type.F16;
                case "q8_0", "q8" -> Gguf.Type.Q8_0;
                default -> throw new UserError("--dtype: expected f32, f16 or q8_0, found '" + dtype + "'");
            };
            OutputPaths.check(out, OutputPaths.Kind.FILE, overwrite, "pass --overwrite to replace it", java.util.List.of(model));
            var bar = new dev.tune4j.train.StepProgress[1]; // created at the first tensor, when the count is known
            try {
                Gguf.export(model, out, t, (done, total) -> {
                    if (bar[0] == null) bar[0] = dev.tune4j.train.StepProgress.phase("export " + out.getFileName(), total, " tensors");
                    bar[0].stepTo(done);
                });
            } finally {
                if (bar[0] != null) bar[0].close();
            }
            var g = Gguf.read(out);
            System.out.printf("wrote %s: GGUF v%d, %d tensors, %d metadata keys, %s (validated by re-reading)%n", out, g.version(), g.tensors().size(), g.metadata().size(),
                    dev.tune4j.cli.InspectCommand.bytes(g.size()));
            return 0;
        }
    }
}
