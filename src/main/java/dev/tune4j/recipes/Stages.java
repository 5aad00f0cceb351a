package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.eval.Report;
import dev.tune4j.hf.AtomicFiles;
import dev.tune4j.hf.OutputPaths;
import dev.tune4j.train.TrainConfig;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * A run of several stages in one run folder (a run file's {@code stages:} list, e.g. SFT then DPO): stage i trains into
 * RUN/i-STAGE with the shared keys plus its own, and continues from the stage before it — a LoRA stage starts from the
 * previous adapter (for DPO also its frozen reference, as TRL does), a full stage from the previous model folder —
 * unless it names its own. One report.html covers them all. With --resume, finished stages are kept and the first
 * unfinished one resumes from its latest checkpoint.
 */
public final class Stages {
    private Stages() {}

    /** @param stages each stage's keys, already merged over the shared ones (and the command line's flags over both) */
    public static List<Run.Summary> run(Path out, List<Map<String, String>> stages, String source, PrintStream log) throws IOException {
        return run(out, stages, source, log, dev.tune4j.dist.Group.SINGLE);
    }

    /** @param group the data-parallel job this process is a rank of: rank 0 alone prepares and writes the run folder */
    public static List<Run.Summary> run(Path out, List<Map<String, String>> stages, String source, PrintStream log, dev.tune4j.dist.Group group) throws IOException {
        if (stages.isEmpty()) throw new UserError(source + ": stages: is empty");
        var configs = new ArrayList<TrainConfig>();
        var merged = new ArrayList<Map<String, String>>();
        var dirs = new ArrayList<Map<String, String>>();
        Path previousOutput = null;
        String previousMethod = null;
        for (int i = 0; i < stages.size(); i++) {
            var m = new LinkedHashMap<>(stages.get(i));
            String name = m.getOrDefault("stage", "sft"), method = m.getOrDefault("method", "lora");
            String dir = (i + 1) + "-" + name;
            m.put("out", out.resolve(dir).toString());
            if (previousOutput != null && !m.containsKey("adapter") && !method.equals("full") && !"full".equals(previousMethod))
                m.put("adapter", previousOutput.toString());
            if (previousOutput != null && method.equals("full") && "full".equals(previousMethod) && !stages.get(i).containsKey("model"))
                m.put("model", previousOutput.toString());
            m.remove("resume");
            configs.add(TrainConfig.fromMap(m, source + " stage " + (i + 1))); // every stage is checked before the first one trains
            checkDataKind(configs.getLast(), i + 1);
            merged.add(m);
            dirs.add(Map.of("stage", name, "dir", dir));
            previousOutput = out.resolve(dir).resolve(method.equals("full") ? "model" : "adapter");
            previousMethod = method;
        }
        boolean resume = stages.stream().anyMatch(s -> s.containsKey("resume"));
        if (group.leader()) prepare(out, configs, dirs, resume, log);
        group.barrier(); // the stages folder is ready before the other ranks look into it
        var summaries = new ArrayList<Run.Summary>();
        for (int i = 0; i < configs.size(); i++) {
            TrainConfig c = configs.get(i);
            if (resume && Files.exists(c.out().resolve("summary.json"))) {
                log.printf("stage %d/%d (%s): finished earlier in %s, kept%n", i + 1, configs.size(), c.stage(), c.out());
                continue;
            }
            if (resume && Files.isDirectory(c.out().resolve("checkpoints"))) {
                var m = new LinkedHashMap<>(merged.get(i));
                m.put("resume", "latest");
                c = TrainConfig.fromMap(m, source + " stage " + (i + 1));
            }
            log.printf("%n== stage %d/%d: %s (%s) → %s%n", i + 1, configs.size(), c.stage(), c.method(), c.out());
            summaries.add(Run.run(c, log, group));
            group.barrier(); // the stage's output is written before the next stage (on every rank) reads it
        }
        if (group.leader()) log.println("report: " + Report.write(out));
        return summaries;
    }

    private static void prepare(Path out, List<TrainConfig> configs, List<Map<String, String>> dirs, boolean resume, PrintStream log) throws IOException {
        boolean overwrite = configs.stream().anyMatch(TrainConfig::overwrite);
        // the run folder holds every stage: it is new or empty, or an earlier run of stages continued or replaced by request
        boolean ours = Files.exists(out.resolve("stages.json"));
        var inputs = new ArrayList<Path>();
        configs.forEach(c -> inputs.addAll(Arrays.asList(c.model(), c.data(), c.valFile(), c.mixFile(), c.generalFile())));
        var checked = OutputPaths.check(out, OutputPaths.Kind.FOLDER, ours && (resume || overwrite),
                ours ? "pass --resume to continue its stages, or --overwrite to replace them" : "it is not a tune4j stages run (no stages.json): give a new or empty out", inputs);
        if (overwrite && !resume && checked.hasContent()) {
            OutputPaths.clearFolder(out);
            log.println("--overwrite: removed the previous stages in " + out);
        }
        Files.createDirectories(out);
        byte[] index = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(Map.of("stages", dirs));
        AtomicFiles.write(out.resolve("stages.json"), o -> o.write(index));
    }

    /** Thrown to stop reading a data file after its first record. */
    private static final class First extends RuntimeException {
        final dev.tune4j.data.Row row;

        First(dev.tune4j.data.Row row) {
            super(null, null, false, false);
            this.row = row;
        }
    }

    /** The stage's data is of its kind (pairs for dpo/orpo/simpo, labelled completions for kto, SFT records otherwise), read from its first record. */
    private static void checkDataKind(TrainConfig c, int stage) {
        dev.tune4j.data.Row first;
        try {
            dev.tune4j.data.DataFiles.forEach(c.data(), c.skipBadRows(), r -> { throw new First(r); }, w -> {});
            return; // no record: the stage itself names the empty file
        } catch (First f) {
            first = f.row;
        }
        try {
            if (!c.preference()) {
                if (c.format() == null && !c.stage().equals("pt")) dev.tune4j.data.Format.detect(first);
                return;
            }
            var f = c.format() != null ? dev.tune4j.data.PreferenceFormat.parse(c.format()) : dev.tune4j.data.PreferenceFormat.detect(first);
            if (f.unpaired() != c.stage().equals("kto"))
                throw new UserError(c.data() + ": stage " + stage + " (" + c.stage() + ") " + (f.unpaired()
                        ? "needs pairs (chosen and rejected), found unpaired KTO rows; use stage: kto" : "needs unpaired {prompt, completion, label} rows, found pairs; use stage: dpo"));
        } catch (dev.tune4j.data.DataException e) {
            throw new UserError("stage " + stage + " (" + c.stage() + "): " + e.getMessage(), e);
        }
    }
}
