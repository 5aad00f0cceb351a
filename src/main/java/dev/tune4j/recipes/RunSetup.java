package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.data.*;
import dev.tune4j.hf.AtomicFiles;
import dev.tune4j.hf.OutputPaths;
import dev.tune4j.train.Checkpoints;
import dev.tune4j.plan.MemoryPlan;
import dev.tune4j.text.Tokenizer;
import dev.tune4j.train.TrainConfig;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/** Small steps every recipe's setup shares: special ids, the data set, the run folder's resolved config. */
final class RunSetup {
    private RunSetup() {}

    static long eosId(Tokenizer tok, dev.tune4j.hf.ModelConfig config) {
        Integer e = tok == null ? null : tok.specialId("eos_token");
        if (e != null) return e;
        if (!config.eosTokenIds().isEmpty()) return config.eosTokenIds().getFirst();
        throw new UserError("neither tokenizer_config.json nor config.json names an end-of-sequence token");
    }

    static long padId(Tokenizer tok, dev.tune4j.hf.ModelConfig config, long eos) {
        Integer p = tok == null ? null : tok.specialId("pad_token");
        if (p != null) return p;
        return config.padTokenId() != null ? config.padTokenId() : eos; // padding is masked and never a target
    }

    static Dataset dataset(TrainConfig c, Tokenizer tok, long eos, PrintStream log) {
        var style = c.promptStyle() != null ? Encoder.PromptStyle.parse(c.promptStyle())
                : tok.chatTemplate().isPresent() ? Encoder.PromptStyle.TEMPLATE : Encoder.PromptStyle.ALPACA;
        var dc = new DataConfig(c.data(), c.format() == null ? null : Format.parse(c.format()), style, c.maxSeqLen(), c.valRatio(),
                c.valFile(), c.mixFile(), c.mixRatio(), c.skipBadRows(), c.seed());
        Dataset ds = Dataset.load(dc, tok, eos);
        log.println("data: " + ds.summary() + " (prompt style " + style.name().toLowerCase() + ")");
        for (String w : ds.warnings.subList(0, Math.min(5, ds.warnings.size()))) log.println("  skipped: " + w);
        if (ds.warnings.size() > 5) log.println("  … and " + (ds.warnings.size() - 5) + " more");
        return ds;
    }

    /**
     * Before the model is loaded: the run folder is checked (an existing run needs --resume or --overwrite; no overlap
     * with an input; writable), the checkpoint to resume is chosen and checked, and only then is an old run replaced.
     * Returns the checkpoint to resume from, or null.
     */
    static Path prepareRunFolder(TrainConfig c, PrintStream log) throws IOException {
        var inputs = Arrays.asList(c.model(), c.data(), c.valFile(), c.mixFile(), c.generalFile(), c.adapter());
        var checked = OutputPaths.check(c.out(), OutputPaths.Kind.FOLDER, c.overwrite() || c.resume() != null,
                "pass --resume to continue the run in it, or --overwrite to replace it", inputs);
        Path from = null;
        if (c.resume() != null) {
            if (c.overwrite() && (c.resume().equals("latest") || OutputPaths.real(Path.of(c.resume())).startsWith(checked.real())))
                throw new UserError("--overwrite would delete the checkpoint that --resume " + c.resume() + " continues from (in " + c.out() + "); give one of them");
            if (c.resume().equals("latest")) {
                from = new Checkpoints(c.out(), c.keepBest(), c.keepLast()).latestGood(log::println);
                if (from == null) throw new UserError("--resume latest: no complete checkpoint under " + c.out().resolve("checkpoints"));
            } else {
                from = Path.of(c.resume());
                String why = Checkpoints.problem(from);
                if (why != null) throw new UserError("--resume " + from + ": not a complete checkpoint: " + why);
            }
            var st = Checkpoints.readState(from);
            if (c.maxSteps() > 0 && c.maxSteps() <= st.step())
                throw new UserError("--resume " + from + " is at step " + st.step() + " and --max-steps is " + c.maxSteps()
                        + ": nothing left to train (give --max-steps above " + st.step() + ")");
            if (c.maxSteps() <= 0 && st.epoch() >= c.epochs())
                throw new UserError("--resume " + from + " is at epoch " + st.epoch() + " and --epochs is " + c.epochs()
                        + ": nothing left to train (raise --epochs or give --max-steps)");
            dropCutLastLine(c.out().resolve("metrics.jsonl"), log);
            dropStepsAfter(c.out().resolve("metrics.jsonl"), st.step(), log);
        }
        if (c.overwrite() && checked.hasContent()) {
            if (!Files.exists(c.out().resolve("run_config.json")))
                throw new UserError("--overwrite replaces a tune4j run folder (one with run_config.json); " + c.out()
                        + " holds other files: give a new or empty --out");
            OutputPaths.clearFolder(c.out());
            log.println("--overwrite: removed the previous contents of " + c.out());
        }
        return from;
    }

    /** A run killed while writing metrics.jsonl leaves a cut last line; the resumed run would append to it and break both records. */
    private static void dropCutLastLine(Path metrics, PrintStream log) throws IOException {
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
            log.println("warning: " + metrics + " ended in a cut line (the run was killed while writing it); removed its " + (end - keep) + " bytes");
        }
    }

    /** Steps logged after the checkpoint a run resumes from are run again: their old lines go, so each step is logged once. */
    private static void dropStepsAfter(Path metrics, long step, PrintStream log) throws IOException {
        if (!Files.isRegularFile(metrics)) return;
        var mapper = new ObjectMapper();
        var keep = new ArrayList<String>();
        int dropped = 0;
        for (String line : Files.readAllLines(metrics)) {
            long s;
            try {
                s = line.isBlank() ? -1 : mapper.readTree(line).path("step").asLong(-1);
            } catch (IOException e) {
                s = -1;
            }
            if (s > step) dropped++;
            else keep.add(line);
        }
        if (dropped == 0) return;
        AtomicFiles.writeString(metrics, String.join("\n", keep) + (keep.isEmpty() ? "" : "\n"));
        log.printf("resume: %d metrics line(s) after step %d removed from %s (those steps run again)%n", dropped, step, metrics);
    }

    /**
     * The first validation items a run evaluates ({@link TrainConfig#evalExamples}: --max-eval-samples, by default 64 but
     * no more than half of what the run trains on, at least 8), said in the log when that is fewer than the split.
     *
     * @param trainSplit the training split's size (examples or pairs)
     * @param world      the processes training together (each takes its batch)
     */
    static <T> List<T> evalShare(List<T> val, TrainConfig c, int trainSplit, int world, PrintStream log) {
        int n = c.evalExamples(c.trainedExamples(trainSplit, world));
        if (n == 0 || val.size() <= n) return val;
        log.printf("validation: the first %d of %d held-out examples (--max-eval-samples%s; 0 evaluates all)%n", n, val.size(),
                c.maxEvalSamples() == TrainConfig.AUTO ? ": 64, but no more than half of what this run trains on, at least 8" : "");
        return val.subList(0, n);
    }

    /**
     * The checkpoint a data-parallel worker other than rank 0 resumes from, read after rank 0 prepared the run folder
     * (it chose and checked it, and set incomplete ones aside): the same one rank 0 resumes from.
     */
    static Path resumePoint(TrainConfig c) throws IOException {
        if (c.resume() == null) return null;
        return c.resume().equals("latest") ? new Checkpoints(c.out(), c.keepBest(), c.keepLast()).latest() : Path.of(c.resume());
    }

    /** A run that failed before its first checkpoint (bad data, a bad flag) leaves no folder it created behind. */
    static void removeIfOnlyConfig(Path out) {
        try (var s = Files.list(out)) {
            if (s.allMatch(p -> Set.of("run_config.json", "run_fingerprint.json").contains(p.getFileName().toString()))) AtomicFiles.deleteTree(out);
        } catch (IOException e) {
            // leave it: it is named in the error the user sees anyway
        }
    }

    /** @param world the data-parallel processes (a resumed run must have as many: each rank's batches depend on it) */
    static void writeResolvedConfig(TrainConfig c, int world, PrintStream log) throws IOException {
        Files.createDirectories(c.out());
        checkResumable(c, world);
        var mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        byte[] json = mapper.writeValueAsBytes(c.toMap());
        AtomicFiles.write(c.out().resolve("run_config.json"), out -> out.write(json));
        var sb = new StringBuilder("config:");
        c.toMap().forEach((k, v) -> { if (v != null) sb.append(' ').append(k).append('=').append(v); });
        log.println(sb);
    }

    /** What a resumed run must share with the run it continues: the data order and batches depend on all of it. */
    static Map<String, Object> fingerprint(TrainConfig c, int world) throws IOException {
        var f = new LinkedHashMap<String, Object>();
        f.put("world size", String.valueOf(world));
        for (String k : List.of("method", "stage", "seed", "batch-size", "grad-accum", "max-seq-len", "packing", "val-ratio", "format",
                "loss-type", "beta", "label-smoothing", "simpo-gamma", "cpo-alpha", "orpo-lambda", "desirable-weight", "undesirable-weight"))
            if (c.applies(k)) f.put(k, String.valueOf(c.toMap().get(k))); // the objective too: a resumed loss must mean what it meant
        f.put("data sha256", sha256(c.data()));
        f.put("val-file sha256", c.valFile() == null ? "-" : sha256(c.valFile()));
        f.put("mix-file sha256", c.mixFile() == null ? "-" : sha256(c.mixFile()));
        return f;
    }

    /** A resume that would silently continue a different run (other seed, batch geometry or data) is a named error listing what changed. */
    private static void checkResumable(TrainConfig c, int world) throws IOException {
        Path file = c.out().resolve("run_fingerprint.json");
        var mapper = new ObjectMapper();
        var now = fingerprint(c, world);
        if (c.resume() != null && Files.exists(file)) {
            var before = mapper.readTree(file.toFile());
            var diffs = new ArrayList<String>();
            now.forEach((k, v) -> {
                String was = before.path(k).asText(k.equals("world size") ? "1" : "-"); // runs from before data parallelism had one process
                if (!was.equals(v)) diffs.add(k + ": " + was + " → " + v);
            });
            if (!diffs.isEmpty() && diffs.size() == 1 && diffs.getFirst().startsWith("world size"))
                throw new UserError("--resume: " + c.out() + " was trained by " + before.path("world size").asText("1") + " process(es), this run has " + world
                        + " (each rank's batches and the global batch depend on it; resharding is not supported): resume with the same --nproc-per-node / WORLD_SIZE");
            if (!diffs.isEmpty())
                throw new UserError("--resume: this run differs from the one in " + c.out() + " (" + String.join("; ", diffs)
                        + "); resume with the same settings, or train into a new --out");
        }
        byte[] json = mapper.enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(now);
        AtomicFiles.write(file, o -> o.write(json));
    }

    private static String sha256(Path file) throws IOException {
        if (!Files.isRegularFile(file)) return "not a regular file"; // named as an error when the data is read
        try (var in = Files.newInputStream(file)) {
            var md = java.security.MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return java.util.HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The planner's peak for this run (its batch, the longest row it will see, its labelled share, optimizer, runtime),
     * printed before training starts so the measured peak at the end can be held against it.
     */
    static MemoryPlan.Estimate predictPeak(TrainConfig c, int world, dev.tune4j.hf.ModelConfig config, Dataset ds, String method, boolean cpu, boolean bf16Projections, boolean bf16Gemms, boolean bf16Embeddings, PrintStream log) {
        long tokens = ds.train.stream().mapToLong(Example::length).sum(), labelled = ds.train.stream().mapToLong(Example::supervisedTokens).sum();
        int longest = ds.train.stream().mapToInt(Example::length).max().orElse(c.maxSeqLen());
        int seq = c.packing() ? c.maxSeqLen() : Math.min(c.maxSeqLen(), longest);
        return predictPeak(c, world, config, c.batchSize(), seq, tokens == 0 ? 0.5 : (double) labelled / tokens, method, cpu, 0, bf16Projections, bf16Gemms, bf16Embeddings, log);
    }

    /**
     * @param items for a preference stage, the pairs (KTO: examples) in the data, and {@code rows} the pairs per micro-batch:
     *              the planner doubles them into rows and adds the reference as the run has it
     * @param bf16Projections the frozen projections stay bf16 ({@link dev.tune4j.model.Bf16Weight})
     * @param bf16Gemms       the projections' and head's GEMMs run in bf16 (Compute#mixed)
     * @param bf16Embeddings  the embedding (and head) are held in bf16 (a bf16 folder on the bf16-matmul path)
     */
    static MemoryPlan.Estimate predictPeak(TrainConfig c, int world, dev.tune4j.hf.ModelConfig config, int rows, int seq, double labelledShare, String method, boolean cpu, long items,
                                           boolean bf16Projections, boolean bf16Gemms, boolean bf16Embeddings, PrintStream log) {
        var m = MemoryPlan.Method.parse(method);
        var optim = c.optim().equals("adamw8bit") ? MemoryPlan.Optim.ADAMW8BIT : c.optimOffload() ? MemoryPlan.Optim.OFFLOAD : MemoryPlan.Optim.ADAMW;
        var setup = new MemoryPlan.Setup(config, m, MemoryPlan.Precision.BF16_MIXED, optim, rows, seq, c.gradientCheckpointing(),
                labelledShare, c.lossChunk(), c.r(), c.targetModules(), c.doubleQuant(), cpu ? MemoryPlan.Runtime.CPU : MemoryPlan.Runtime.GPU);
        if (c.useDora()) setup = setup.withDora(true);
        if (c.preference()) {
            var stage = MemoryPlan.Stage.parse(c.stage());
            boolean copy = c.stage().equals("kto") && m == MemoryPlan.Method.FULL; // full KTO keeps a frozen copy (see recipes.Preference)
            setup = setup.withStage(stage, MemoryPlan.Reference.of(stage, m, c.precomputeRefLogps(), c.adapter() != null, copy), items);
        }
        var e = MemoryPlan.perRank(setup, world, c.zero()); // with one process, the whole run's peak
        e = MemoryPlan.forCompute(setup, e, bf16Gemms, bf16Projections, bf16Embeddings, c.loraDropout(),
                MemoryPlan.Heap.of(dev.tune4j.tensor.NativeHeap.cachingAllocator()));
        var sb = new StringBuilder();
        e.parts().forEach((k, v) -> sb.append(sb.isEmpty() ? "" : ", ").append(k).append(' ').append(Math.round(v / 1048576.0)).append(" MiB"));
        log.printf("planner: predicted peak memory %.0f MiB%s at batch %d%s × %d tokens (%s)%n", e.peak() / 1048576.0, world > 1 ? " per rank" : "", rows, c.preference() ? (c.stage().equals("kto") ? " examples" : " pairs") : "", seq, sb);
        return e;
    }

    /**
     * The planner against the peak by the end of training (load and validation included), and the process's peak when
     * the end of the run (sample generation, report) went higher: the planner predicts the training run.
     */
    static void reportPeak(long predicted, long training, long process, PrintStream log) {
        // training: VmHWM from the loop's start (Run resets it there); process: the run's whole peak, loading and the end included
        log.printf("memory: measured peak %.0f MiB in training, planner predicted %.0f MiB for the training run (%+.1f %%)%s%n",
                training / 1048576.0, predicted / 1048576.0, 100.0 * (predicted - training) / training,
                process > training + (16L << 20) ? String.format("; %.0f MiB for the whole run (loading, sample generation, report)", process / 1048576.0) : "");
    }
}
