package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.data.*;
import dev.tune4j.hf.AtomicFiles;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.text.Tokenizer;
import dev.tune4j.train.*;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * The preference stages (dpo, orpo, simpo): pairs of completions in TRL's batch layout and TRL's losses. DPO's
 * reference is the policy's base (adapter off, or the frozen starting adapter), run beside each step; or, with
 * --precompute-ref-logps (always for full fine-tuning, which keeps no second model), computed once before training into
 * ref_logps.json in the run folder and reused on resume.
 */
final class Preference {
    private Preference() {}

    record Stage(MicroSource train, MicroSource val, Objective objective, int longest, double labelledShare, long items, List<Example> samples) {}

    /** A few prompts for the report to answer, with the preferred completion as the expected answer (validation first). */
    private static List<Example> samples(List<long[]> prompts, List<long[]> answers) {
        var out = new ArrayList<Example>();
        for (int i = 0; i < Math.min(3, prompts.size()); i++) {
            long[] p = prompts.get(i), a = answers.get(i), ids = Arrays.copyOf(p, p.length + a.length), labels = new long[ids.length];
            System.arraycopy(a, 0, ids, p.length, a.length);
            Arrays.fill(labels, 0, p.length, Example.IGNORE);
            System.arraycopy(a, 0, labels, p.length, a.length);
            out.add(new Example(ids, labels));
        }
        return out;
    }

    /** @param shard this process's part of each batch (data parallel) */
    static Stage setup(TrainConfig c, LlamaModel model, Tokenizer tok, long eos, long pad, Run.Method method, Shard shard, PrintStream log) throws IOException {
        var style = c.promptStyle() != null ? Encoder.PromptStyle.parse(c.promptStyle())
                : tok != null && tok.chatTemplate().isPresent() ? Encoder.PromptStyle.TEMPLATE : Encoder.PromptStyle.ALPACA;
        var data = PreferenceData.load(new PreferenceDataConfig(c.data(), c.format() == null ? null : PreferenceFormat.parse(c.format()), style,
                c.maxSeqLen(), null, c.valRatio(), c.valFile(), c.skipBadRows(), c.seed()), tok, eos);
        boolean kto = c.stage().equals("kto");
        if (data.unpaired != kto)
            throw new UserError(c.data() + ": " + (kto ? "--stage kto needs unpaired {prompt, completion, label} rows, found pairs (" + data.format + "); use --stage dpo"
                    : "unpaired {prompt, completion, label} rows are KTO data; --stage " + c.stage() + " needs pairs (chosen and rejected); use --stage kto"));
        if ((kto ? data.kTrain : data.train).isEmpty()) throw new UserError(c.data() + ": no example left to train on (" + data.summary() + ")");
        PairBatches.checkIds(c.data(), data.train, data.val, data.kTrain, data.kVal, model.config.vocabSize());
        log.println("data: " + data.summary() + " (prompt style " + style.name().toLowerCase(Locale.ROOT) + ")");
        data.warnings.stream().limit(5).forEach(w -> log.println("  note: " + w));
        if (data.warnings.size() > 5) log.println("  … and " + (data.warnings.size() - 5) + " more");
        if (kto) return kto(c, model, data, pad, method, shard, log);
        boolean orpo = c.stage().equals("orpo");
        var train = PairBatches.pairs(data.train, c.batchSize(), pad, c.seed(), orpo, 0, shard);
        var val = PairBatches.pairs(RunSetup.evalShare(data.val, c, data.train.size(), shard.world(), log), c.batchSize(), pad, c.seed(), orpo, data.train.size(), shard);
        var cfg = switch (c.stage()) {
            case "simpo" -> new PreferenceLoss.Config(PreferenceLoss.Type.SIMPO, c.beta(), 0, c.simpoGamma(), c.cpoAlpha());
            case "orpo" -> new PreferenceLoss.Config(PreferenceLoss.Type.ORPO, c.orpoLambda(), 0, 0, 0);
            default -> new PreferenceLoss.Config(PreferenceLoss.Type.parse(c.lossType()), c.beta(), c.labelSmoothing(), 0, 0);
        };
        PreferenceLoss.Reference reference = null;
        if (cfg.type().needsReference()) {
            boolean full = method.adapter() == null;
            // every rank computes every pair's reference (its rows come from the shuffled batches, not from a file-order slice)
            var everyPair = List.of(PairBatches.pairs(data.train, c.batchSize(), pad, c.seed(), orpo, 0),
                    PairBatches.pairs(data.val, c.batchSize(), pad, c.seed(), orpo, data.train.size()));
            reference = full || c.precomputeRefLogps()
                    ? precomputed(c, model, method, full, everyPair, data.train.size() + data.val.size(), shard.rank() == 0, log)
                    : PreferenceLoss.switched(model, method::toReference, method::toPolicy, c.lossChunk());
        }
        int longest = 1;
        long labelled = 0, tokens = 0;
        for (var p : data.train) {
            longest = Math.max(longest, p.prompt().length + Math.max(p.chosen().length, p.rejected().length));
            labelled += p.chosen().length + p.rejected().length;
            tokens += 2L * p.prompt().length + p.chosen().length + p.rejected().length;
        }
        log.printf("%s: %s, beta %s%s%n", c.stage(), cfg.type().name().toLowerCase(Locale.ROOT), cfg.beta(), reference == null ? ", no reference model"
                : c.precomputeRefLogps() || method.adapter() == null ? ", reference log-probs precomputed"
                : c.adapter() != null ? ", reference = the frozen starting adapter" : ", reference = the base with the adapter off");
        var shown = data.val.isEmpty() ? data.train : data.val;
        return new Stage(train, val, new PreferenceLoss(cfg, reference), longest, tokens == 0 ? 0.5 : (double) labelled / tokens, data.train.size() + data.val.size(),
                samples(shown.stream().map(PreferencePair::prompt).toList(), shown.stream().map(PreferencePair::chosen).toList()));
    }

    /** KTO: unpaired examples with their KL rows; the reference is the base with the adapter off (a LoRA method only). */
    private static Stage kto(TrainConfig c, LlamaModel model, PreferenceData data, long pad, Run.Method method, Shard shard, PrintStream log) {
        var train = PairBatches.kto(data.kTrain, c.batchSize(), pad, c.seed(), 0, shard);
        var val = PairBatches.kto(RunSetup.evalShare(data.kVal, c, data.kTrain.size(), shard.world(), log), c.batchSize(), pad, c.seed(), data.kTrain.size(), shard);
        boolean[] desirable = new boolean[data.kTrain.size() + data.kVal.size()];
        int longest = 1, i = 0;
        long labelled = 0, tokens = 0;
        for (var list : List.of(data.kTrain, data.kVal))
            for (var e : list) {
                desirable[i++] = e.desirable();
                longest = Math.max(longest, e.prompt().length + e.completion().length);
                labelled += e.completion().length;
                tokens += e.prompt().length + e.completion().length;
            }
        // KL rows pair each prompt with another completion of the same batch, so the reference runs beside each step:
        // the base with the adapter off, or for full fine-tuning a frozen copy of the starting weights
        boolean copy = method.adapter() == null;
        log.printf("kto: beta %s, desirable weight %s, undesirable weight %s, reference = %s%n", c.beta(), c.desirableWeight(), c.undesirableWeight(),
                copy ? "a frozen copy of the starting model (a second model in memory)" : c.adapter() != null ? "the frozen starting adapter" : "the base with the adapter off");
        var ref = copy ? PreferenceLoss.switched(method.referenceCopy(), () -> {}, () -> {}, c.lossChunk())
                : PreferenceLoss.switched(model, method::toReference, method::toPolicy, c.lossChunk());
        var shown = (data.kVal.isEmpty() ? data.kTrain : data.kVal).stream().filter(KtoExample::desirable).toList();
        return new Stage(train, val, new KtoLoss(c.beta(), c.desirableWeight(), c.undesirableWeight(), desirable, ref), longest, tokens == 0 ? 0.5 : (double) labelled / tokens, desirable.length,
                samples(shown.stream().map(KtoExample::prompt).toList(), shown.stream().map(KtoExample::completion).toList()));
    }

    /**
     * Reference log-probs of every row of every pair, computed once from the model as it starts (the adapter off) and
     * stored as ref_logps.json; a resumed run reads them back, so the reference never moves.
     */
    private static PreferenceLoss.Reference precomputed(TrainConfig c, LlamaModel model, Run.Method method, boolean full, List<PairBatches> sources,
                                                        int pairs, boolean writer, PrintStream log) throws IOException {
        Path file = c.out().resolve("ref_logps.json");
        var json = new ObjectMapper();
        double[][] byPair = new double[pairs][];
        if (c.resume() != null && Files.exists(file)) {
            var node = json.readTree(file.toFile()).get("pairs");
            if (node == null || node.size() != pairs)
                throw new UserError(file + ": holds " + (node == null ? 0 : node.size()) + " reference pairs, the data has " + pairs + " (did --data change?)");
            for (int i = 0; i < pairs; i++) byPair[i] = new double[]{node.get(i).get(0).asDouble(), node.get(i).get(1).asDouble()};
            log.println("reference log-probs: read " + file);
        } else {
            var live = PreferenceLoss.switched(model, full ? () -> {} : method::toReference, full ? () -> {} : method::toPolicy, c.lossChunk());
            long t0 = System.nanoTime();
            try (var bar = StepProgress.phase("reference log-probs", sources.stream().mapToLong(MicroSource::inOrderCount).sum(), " batches")) {
                for (var src : sources)
                    for (int i = 0; i < src.inOrderCount(); i++) {
                        try (var scope = new org.bytedeco.javacpp.PointerScope()) {
                            Micro mb = src.inOrder(i, model.compute);
                            double[] sums = live.logps(mb);
                            int b = mb.rows() / 2;
                            for (int r = 0; r < b; r++) byPair[mb.rowIds()[r]] = new double[]{sums[r], sums[r + b]};
                        }
                        bar.step();
                    }
            }
            var out = new LinkedHashMap<String, Object>();
            out.put("data", c.data().toString());
            out.put("pairs", byPair);
            byte[] bytes = json.writeValueAsBytes(out);
            if (writer) AtomicFiles.write(file, o -> o.write(bytes)); // rank 0 writes the run folder
            log.printf("reference log-probs: %d pairs in %.1f s → %s%n", pairs, (System.nanoTime() - t0) / 1e9, file);
        }
        return mb -> {
            int b = mb.rows() / 2;
            double[] sums = new double[mb.rows()];
            for (int r = 0; r < b; r++) {
                sums[r] = byPair[mb.rowIds()[r]][0];
                sums[r + b] = byPair[mb.rowIds()[r]][1];
            }
            return sums;
        };
    }
}
