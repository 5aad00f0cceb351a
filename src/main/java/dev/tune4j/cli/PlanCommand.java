package dev.tune4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.plan.Catalog;
import dev.tune4j.plan.ParamCount;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.Callable;

/** The planner's first part: exact parameter counts by component and LoRA's trainable count, from config.json or the catalog. */
@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "Parameter counts for a model and method (memory, time, cost and the decision rules are being added: issue 5).")
final class PlanCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "a model folder (its config.json) or a catalog name: ${COMPLETION-CANDIDATES}", completionCandidates = Names.class)
    String model;

    @Option(names = "--method", defaultValue = "lora", description = "full, lora or qlora (default ${DEFAULT-VALUE})")
    String method;

    @Option(names = "--r", defaultValue = "16", description = "LoRA rank (default ${DEFAULT-VALUE})")
    int r;

    @Option(names = "--target-modules", defaultValue = "all-linear", split = ",", description = "LoRA targets: projection names or all-linear (default ${DEFAULT-VALUE})")
    List<String> targets;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    static final class Names extends java.util.ArrayList<String> {
        Names() {
            super(Catalog.MODELS.keySet());
        }
    }

    @Override
    public Integer call() throws Exception {
        Path p = Path.of(model);
        ModelConfig c = Files.isDirectory(p) ? ModelConfig.load(p.resolve("config.json")) : Catalog.get(model);
        if (!List.of("full", "lora", "qlora").contains(method)) throw new Main.BadInput("--method: expected full, lora or qlora, found '" + method + "'");
        var parts = ParamCount.byComponent(c);
        long total = ParamCount.total(c);
        long trainable = method.equals("full") ? total : ParamCount.lora(c, r, targets);
        var out = new LinkedHashMap<String, Object>();
        out.put("model", model);
        out.put("architecture", c.arch().className);
        out.put("parameters", parts);
        out.put("total", total);
        out.put("non_embedding", ParamCount.nonEmbedding(c));
        out.put("method", method);
        out.put("trainable", trainable);
        out.put("trainable_share", (double) trainable / total);
        if (json) {
            System.out.println(new ObjectMapper().writeValueAsString(out));
            return 0;
        }
        System.out.printf("%s (%s): %d layers, hidden %d, intermediate %d, heads %d/%d, vocab %d%s%n", model, c.arch().className, c.numLayers(), c.hiddenSize(),
                c.intermediateSize(), c.numHeads(), c.numKvHeads(), c.vocabSize(), c.tieWordEmbeddings() ? ", tied embeddings" : "");
        parts.forEach((k, v) -> System.out.printf("  %-12s %,18d%n", k, v));
        System.out.printf("  %-12s %,18d   (non-embedding %,d)%n", "total", total, ParamCount.nonEmbedding(c));
        System.out.printf("%s: %,d trainable parameters (%.3f%%)%s%n", method, trainable, 100.0 * trainable / total,
                method.equals("full") ? "" : String.format(" with r=%d on %s", r, String.join(",", targets)));
        return 0;
    }
}
