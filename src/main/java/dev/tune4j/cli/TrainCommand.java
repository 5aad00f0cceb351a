package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.tune4j.hf.OutputPaths;
import dev.tune4j.dist.Group;
import dev.tune4j.dist.Launcher;
import dev.tune4j.train.TrainConfig;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * {@code tune4j train}: flags generated from {@link TrainConfig#TABLE}, so a YAML/JSON run file uses exactly the flag
 * names as keys; flags given on the command line override the file.
 */
final class TrainCommand {
    private TrainCommand() {}

    static CommandLine build() {
        CommandSpec[] self = new CommandSpec[1];
        CommandSpec spec = CommandSpec.wrapWithoutInspection((java.util.concurrent.Callable<Integer>) () -> run(self[0].commandLine().getParseResult()));
        self[0] = spec;
        spec.name("train").mixinStandardHelpOptions(true);
        spec.usageMessage().description("Fine-tune a model (LoRA, QLoRA or full; SFT, continued pre-training, DPO, ORPO or SimPO) from flags or a YAML/JSON run file; flags override the file.");
        spec.addOption(OptionSpec.builder("--config").paramLabel("FILE").type(Path.class).description("YAML or JSON run file whose keys are the flag names below").build());
        for (TrainConfig.Key k : TrainConfig.TABLE) {
            boolean flag = k.kind() == TrainConfig.Kind.BOOL;
            boolean resume = k.name().equals("resume"); // --resume alone means latest
            spec.addOption(OptionSpec.builder("--" + k.name()).type(String.class).arity(flag || resume ? "0..1" : "1").fallbackValue(resume ? "latest" : "true")
                    .paramLabel(flag ? "BOOL" : resume ? "latest|DIR" : k.kind().name()).description(k.describe()).build());
        }
        return new CommandLine(spec).setOverwrittenOptionsAllowed(true); // the last occurrence of a flag wins
    }

    static int run(CommandLine.ParseResult p) {
        var values = new LinkedHashMap<String, String>();
        var stages = new ArrayList<Map<String, String>>();
        String source = "command line";
        if (p.hasMatchedOption("--config")) {
            Path file = p.matchedOptionValue("--config", (Path) null);
            JsonNode root = readTree(file);
            values.putAll(keys(root, file));
            JsonNode list = root.get("stages");
            if (list != null && (!list.isArray() || list.isEmpty())) throw new UserError(file + ": stages: expected a list of key mappings (one per stage)");
            if (list != null) for (JsonNode st : list) {
                if (!st.isObject()) throw new UserError(file + ": stages: each stage is a mapping of keys, found " + st);
                stages.add(keys(st, file));
            }
            source = file.toString();
        }
        var flags = new LinkedHashMap<String, String>();
        for (String k : TrainConfig.KEYS) if (p.hasMatchedOption("--" + k)) flags.put(k, p.matchedOptionValue("--" + k, ""));
        for (var m : List.of(values, flags)) { // --resume alone, or resume: true, means latest (transformers' resume_from_checkpoint=True)
            String resume = m.get("resume");
            if (resume != null && (resume.isEmpty() || resume.equalsIgnoreCase("true"))) m.put("resume", "latest");
            if (resume != null && resume.equalsIgnoreCase("false")) m.remove("resume");
        }
        Path configFile = p.matchedOptionValue("--config", (Path) null);
        String out = flags.getOrDefault("out", values.get("out"));
        if (out != null) Main.traceDir = Path.of(out); // an internal error's trace goes to the run folder's error.log
        if (configFile != null && out != null) // the run file is an input too: no run folder may hold or replace it
            OutputPaths.check(Path.of(out), OutputPaths.Kind.FOLDER, true, "", List.of(configFile));
        try {
            var merged = new ArrayList<Map<String, String>>(); // shared keys, then the stage's, then the command line's
            for (var st : stages) {
                var m = new LinkedHashMap<>(values);
                m.putAll(st);
                m.putAll(flags);
                merged.add(m);
            }
            values.putAll(flags);
            if (!stages.isEmpty() && out == null) throw new UserError(source + ": out is required (the run folder that holds every stage)");
            // checked before any worker starts: a bad key fails once, here, not in every worker
            TrainConfig first = TrainConfig.fromMap(stages.isEmpty() ? values : withOut(merged.getFirst()), source);
            var env = System.getenv();
            boolean worker = env.containsKey("WORLD_SIZE");
            if (first.nprocPerNode() > 1 && !worker) { // like torchrun: N workers on this machine run this same command
                var args = new ArrayList<>(List.of(Main.lastArgs));
                if (Main.lastDebug) args.add("--debug");
                return Launcher.run(first.nprocPerNode(), Main.class.getName(), args, System.out, System.err);
            }
            if (worker) Launcher.watchLauncher();
            try (Group group = Group.join(env, java.time.Duration.ofSeconds(first.distTimeout()), dev.tune4j.tensor.Compute.auto().cuda())) {
                if (!group.leader()) { // rank 0 speaks for the job; the others print only their errors
                    System.setOut(new java.io.PrintStream(java.io.OutputStream.nullOutputStream()));
                    dev.tune4j.train.StepProgress.silence();
                }
                if (stages.isEmpty()) dev.tune4j.recipes.Run.run(TrainConfig.fromMap(values, source), System.out, group);
                else dev.tune4j.recipes.Stages.run(Path.of(out), merged, source, System.out, group);
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new UserError("interrupted while waiting for the workers");
        }
        return 0;
    }

    /** A stage's keys with an out, for checking them before the stages run (each stage gets its own folder later). */
    private static Map<String, String> withOut(Map<String, String> m) {
        var c = new LinkedHashMap<>(m);
        c.putIfAbsent("out", "stage");
        return c;
    }

    static JsonNode readTree(Path file) {
        JsonNode root;
        try {
            String text = Files.readString(file);
            root = (file.toString().endsWith(".json") ? new ObjectMapper() : new ObjectMapper(new YAMLFactory())).readTree(text);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read run file: " + e.getMessage());
        }
        if (root == null || !root.isObject()) throw new UserError(file + ": expected a mapping of flag names to values");
        return root;
    }

    /** A mapping's keys as strings (lists joined with commas); the stages list is not a key. */
    static Map<String, String> keys(JsonNode node, Path file) {
        var m = new LinkedHashMap<String, String>();
        node.properties().forEach(e -> {
            JsonNode v = e.getValue();
            if (e.getKey().equals("stages")) return;
            if (v.isObject()) throw new UserError(file + ": '" + e.getKey() + "' expects a value, found a mapping");
            if (v.isArray()) {
                var parts = new ArrayList<String>();
                v.forEach(x -> parts.add(x.asText()));
                m.put(e.getKey(), String.join(",", parts));
            } else if (!v.isNull()) m.put(e.getKey(), v.asText());
        });
        return m;
    }
}
