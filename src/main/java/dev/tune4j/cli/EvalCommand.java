package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.data.*;
import dev.tune4j.eval.Forgetting;
import dev.tune4j.eval.Perplexity;
import dev.tune4j.eval.Scoring;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.train.Evaluation;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;

/** Loss/perplexity, generation scores and the forgetting check for a model, optionally with an adapter. */
@Command(name = "eval", mixinStandardHelpOptions = true, description = "Evaluate a model (+ adapter): loss and perplexity, generation scores, forgetting check.")
final class EvalCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "model folder")
    Path model;

    @Option(names = "--adapter", description = "PEFT LoRA adapter to evaluate on top of the model")
    Path adapter;

    @Option(names = "--data", description = "data to score (any training format; instruction data is scored on completions only)")
    Path data;

    @Option(names = "--format", description = "alpaca | chat | sharegpt | prompt_completion | text (default: detected)")
    String format;

    @Option(names = "--prompt-style", description = "template or alpaca (default: template when the tokenizer has one)")
    String promptStyle;

    @Option(names = "--max-seq-len", defaultValue = "512", description = "tokens per example (default ${DEFAULT-VALUE})")
    int maxSeqLen;

    @Option(names = "--generate", description = "also answer every prompt greedily and score exact match / contains / --regex")
    boolean generate;

    @Option(names = "--max-new-tokens", defaultValue = "64", description = "answer length limit (default ${DEFAULT-VALUE})")
    int maxNewTokens;

    @Option(names = "--regex", description = "with --generate: share of answers containing a match of this pattern")
    String regex;

    @Option(names = "--limit", defaultValue = "0", description = "score at most N records with --generate (0 = all)")
    int limit;

    @Option(names = "--forgetting", description = "compare general-text perplexity of the model with and without the adapter")
    boolean forgetting;

    @Option(names = "--general", description = "general text for --forgetting (.txt or any text format)")
    Path general;

    @Option(names = "--tuned-model", description = "with --forgetting: a fully fine-tuned model folder to compare with --model (instead of --adapter)")
    Path tunedModel;

    @Option(names = "--threshold", defaultValue = "0.1", description = "flag a relative perplexity increase above this (default ${DEFAULT-VALUE})")
    double threshold;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Option(names = "--preference", description = "--data holds preference pairs: preference loss, reward accuracy and margins (policy = model + adapter)")
    boolean preference;

    @Option(names = "--loss-type", defaultValue = "sigmoid", description = "with --preference: sigmoid, ipo, hinge, robust (DPO), simpo or orpo (default ${DEFAULT-VALUE})")
    String lossType;

    @Option(names = "--beta", description = "with --preference: beta (default 0.1; 2.0 for simpo; orpo's lambda)")
    Double beta;

    @Option(names = "--label-smoothing", defaultValue = "0", description = "with --preference: robust's epsilon, or conservative DPO with sigmoid (default ${DEFAULT-VALUE})")
    double labelSmoothing;

    @Option(names = "--simpo-gamma", defaultValue = "0.5", description = "with --loss-type simpo: the margin gamma (default ${DEFAULT-VALUE})")
    double simpoGamma;

    @Option(names = "--ref-adapter", description = "with --preference: the reference is the model + this adapter (an SFT adapter) instead of the model alone")
    Path refAdapter;

    @Option(names = "--ref-model", description = "with --preference: the reference is this model folder (e.g. the base of a fully fine-tuned --model)")
    Path refModel;

    @Option(names = "--batch-size", defaultValue = "8", description = "with --preference: pairs per batch (default ${DEFAULT-VALUE})")
    int batchSize;

    @Override
    public Integer call() throws Exception {
        Limits.positive("--max-seq-len", maxSeqLen);
        Limits.positive("--max-new-tokens", maxNewTokens);
        Limits.nonNegative("--limit", limit);
        Limits.positive("--batch-size", batchSize);
        Limits.nonNegative("--threshold", threshold);
        if (preference) return preference();
        if (data == null && !forgetting) throw new UserError("give --data FILE, --forgetting --general FILE, or both");
        if (forgetting && (general == null || (adapter == null) == (tunedModel == null)))
            throw new UserError("--forgetting needs --general FILE and either --adapter DIR or --tuned-model DIR");
        var result = new LinkedHashMap<String, Object>();
        result.put("model", model.toString());
        result.put("adapter", adapter == null ? null : adapter.toString());
        try (LoadedModel lm = LoadedModel.open(model)) {
            var tok = lm.requireTokenizer();
            long eos = lm.eosIds().isEmpty() ? 2 : lm.eosIds().getFirst();
            LoraAdapter lora = null;
            try {
                if (forgetting) {
                    Forgetting f;
                    if (tunedModel != null) {
                        var base = Perplexity.of(lm.model(), tok, general, Format.TEXT, Encoder.PromptStyle.ALPACA, maxSeqLen, 4, eos);
                        try (LoadedModel tuned = LoadedModel.open(tunedModel)) {
                            var t = Perplexity.of(tuned.model(), tok, general, Format.TEXT, Encoder.PromptStyle.ALPACA, maxSeqLen, 4, eos);
                            f = new Forgetting(base.perplexity(), t.perplexity(), threshold, base.tokens());
                        }
                    } else {
                        LoraAdapter[] holder = new LoraAdapter[1];
                        f = Perplexity.forgetting(lm.model(), tok, general, maxSeqLen, eos, threshold, () -> holder[0] = LoraAdapter.load(adapter, lm.model()));
                        lora = holder[0];
                    }
                    result.put("forgetting", new LinkedHashMap<>(java.util.Map.of("base_perplexity", f.basePerplexity(), "tuned_perplexity", f.tunedPerplexity(),
                            "relative_increase", f.relativeIncrease(), "threshold", f.threshold(), "flagged", f.flagged(), "tokens", f.tokens())));
                    if (!json) System.out.println(f.summary());
                } else if (adapter != null) lora = LoraAdapter.load(adapter, lm.model());
                if (data != null) {
                    var read = DataFiles.read(data, false);
                    Format fmt = format != null ? Format.parse(format) : Format.detect(read.rows().getFirst());
                    var style = promptStyle != null ? Encoder.PromptStyle.parse(promptStyle)
                            : tok.chatTemplate().isPresent() ? Encoder.PromptStyle.TEMPLATE : Encoder.PromptStyle.ALPACA;
                    var loss = Perplexity.of(lm.model(), tok, data, fmt, style, maxSeqLen, 8, eos);
                    result.put("loss", loss.loss());
                    result.put("perplexity", loss.perplexity());
                    result.put("tokens", loss.tokens());
                    if (!json) System.out.printf("%s: loss %.4f, perplexity %.3f over %d predicted tokens%n", data, loss.loss(), loss.perplexity(), loss.tokens());
                    if (generate) {
                        var rows = limit > 0 ? read.rows().subList(0, Math.min(limit, read.rows().size())) : read.rows();
                        var s = Scoring.run(lm.model(), tok, new Encoder(tok, style, eos), rows, fmt, maxNewTokens, lm.eosIds(), regex == null ? null : Pattern.compile(regex));
                        result.put("n", s.n());
                        result.put("exact_match", s.exactMatch());
                        result.put("contains", s.contains());
                        result.put("regex", s.regex());
                        result.put("samples", s.samples().subList(0, Math.min(5, s.samples().size())));
                        if (!json) {
                            System.out.printf("generation on %d prompts: exact match %.1f%%, contains %.1f%%%s%n", s.n(), 100 * s.exactMatch(), 100 * s.contains(),
                                    s.regex() == null ? "" : String.format(", regex %.1f%%", 100 * s.regex()));
                            for (var sample : s.samples().subList(0, Math.min(3, s.samples().size())))
                                System.out.printf("  expected %s%n  answered %s%n", sample.expected(), sample.answer());
                        }
                    }
                }
            } finally {
                if (lora != null) lora.close();
            }
        }
        if (json) System.out.println(new ObjectMapper().writeValueAsString(result));
        return 0;
    }

    /** eval --preference: the loss and TRL's metrics of model + adapter against its reference on held-out pairs. */
    private int preference() throws Exception {
        if (data == null) throw new UserError("--preference needs --data PAIRS");
        if (forgetting || generate) throw new UserError("--preference does not combine with --forgetting or --generate");
        var type = dev.tune4j.train.PreferenceLoss.Type.parse(lossType);
        var cfg = new dev.tune4j.train.PreferenceLoss.Config(type, beta != null ? beta : type == dev.tune4j.train.PreferenceLoss.Type.SIMPO ? 2.0 : 0.1,
                labelSmoothing, simpoGamma, 0);
        var result = new LinkedHashMap<String, Object>();
        try (LoadedModel lm = LoadedModel.open(model);
             LoraAdapter policy = adapter == null ? null : LoraAdapter.load(adapter, lm.model(), "default");
             LoraAdapter ref = refAdapter == null ? null : LoraAdapter.load(refAdapter, lm.model(), "reference")) {
            if (refModel != null && (refAdapter != null || !type.needsReference()))
                throw new UserError(refAdapter != null ? "give one reference: --ref-adapter or --ref-model" : "--ref-model: " + lossType + " has no reference model");
            if (type.needsReference() && policy == null && ref == null && refModel == null)
                throw new UserError("--preference with " + lossType + " compares the policy (--adapter, or a fine-tuned --model with --ref-model) with a reference: give --adapter DIR (and optionally --ref-adapter DIR), or --ref-model DIR");
            if (ref != null) ref.enable(false);
            var tok = lm.tokenizer();
            long eos = lm.eosIds().isEmpty() ? -1 : lm.eosIds().getFirst();
            var style = promptStyle != null ? Encoder.PromptStyle.parse(promptStyle)
                    : tok != null && tok.chatTemplate().isPresent() ? Encoder.PromptStyle.TEMPLATE : Encoder.PromptStyle.ALPACA;
            var pd = PreferenceData.load(new PreferenceDataConfig(data, format == null ? null : PreferenceFormat.parse(format), style, maxSeqLen, null, 0, null, false, 0), tok, eos);
            if (pd.unpaired) return kto(lm, pd, toReferenceOf(policy, ref), toPolicyOf(policy, ref), result);
            Integer padTok = tok == null ? null : tok.specialId("pad_token");
            long pad = padTok != null ? padTok : lm.model().config.padTokenId() != null ? lm.model().config.padTokenId() : Math.max(0, eos);
            Runnable toReference = toReferenceOf(policy, ref), toPolicy = toPolicyOf(policy, ref);
            dev.tune4j.train.PairBatches.checkIds(data, pd.train, java.util.List.of(), java.util.List.of(), java.util.List.of(), lm.model().config.vocabSize());
            Evaluation.Result r;
            if (refModel != null) {
                try (LoadedModel refLm = LoadedModel.open(refModel)) {
                    if (refLm.model().config.vocabSize() != lm.model().config.vocabSize())
                        throw new UserError("--ref-model " + refModel + " has a vocabulary of " + refLm.model().config.vocabSize() + ", --model " + lm.model().config.vocabSize());
                    r = dev.tune4j.eval.Preferences.against(lm.model(), refLm.model(), pd.train, cfg, pad, batchSize, dev.tune4j.train.TrainConfig.LOSS_CHUNK);
                }
            } else r = dev.tune4j.eval.Preferences.of(lm.model(), pd.train, cfg, toReference, toPolicy, pad, batchSize, dev.tune4j.train.TrainConfig.LOSS_CHUNK);
            result.put("model", model.toString());
            result.put("adapter", adapter == null ? null : adapter.toString());
            result.put("reference", !type.needsReference() ? null : refModel != null ? refModel.toString() : refAdapter != null ? refAdapter.toString() : "model without adapter");
            result.put("loss_type", type.name().toLowerCase(java.util.Locale.ROOT));
            result.put("beta", cfg.beta());
            result.put("pairs", pd.train.size());
            result.put("dropped", pd.dropped);
            result.put("loss", r.loss());
            result.putAll(r.metrics());
            if (!json) {
                System.out.printf("%s: %d pairs (%d dropped), %s loss %.4f%n", data, pd.train.size(), pd.dropped, result.get("loss_type"), r.loss());
                System.out.printf("reward accuracy %.3f, margin %.4f (chosen %.4f, rejected %.4f)%n", r.metrics().get("rewards/accuracies"),
                        r.metrics().get("rewards/margins"), r.metrics().get("rewards/chosen"), r.metrics().get("rewards/rejected"));
            }
        }
        if (json) System.out.println(new ObjectMapper().writeValueAsString(result));
        return 0;
    }

    private static Runnable toReferenceOf(LoraAdapter policy, LoraAdapter ref) {
        return () -> { if (policy != null) policy.enable(false); if (ref != null) ref.enable(true); };
    }

    private static Runnable toPolicyOf(LoraAdapter policy, LoraAdapter ref) {
        return () -> { if (ref != null) ref.enable(false); if (policy != null) policy.enable(true); };
    }

    @Option(names = "--desirable-weight", defaultValue = "1.0", description = "with --preference on KTO rows: weight of the desirable examples' losses (default ${DEFAULT-VALUE})")
    double desirableWeight;

    @Option(names = "--undesirable-weight", defaultValue = "1.0", description = "with --preference on KTO rows: weight of the undesirable examples' losses (default ${DEFAULT-VALUE})")
    double undesirableWeight;

    /** eval --preference on unpaired {prompt, completion, label} rows: KTO's loss, KL estimate and rewards. */
    private int kto(LoadedModel lm, PreferenceData pd, Runnable toReference, Runnable toPolicy, LinkedHashMap<String, Object> result) throws Exception {
        if (refModel != null) throw new UserError("--ref-model: KTO rows are scored against the model without the adapter or --ref-adapter");
        if (!lossType.equals("sigmoid")) throw new UserError("--loss-type " + lossType + ": " + data + " holds unpaired KTO rows, scored with KTO's loss (leave --loss-type out)");
        double b = beta != null ? beta : 0.1;
        long eos = lm.eosIds().isEmpty() ? 0 : lm.eosIds().getFirst();
        var r = dev.tune4j.eval.Preferences.kto(lm.model(), pd.kTrain, b, desirableWeight, undesirableWeight, toReference, toPolicy, eos, batchSize, dev.tune4j.train.TrainConfig.LOSS_CHUNK);
        result.put("model", model.toString());
        result.put("adapter", adapter == null ? null : adapter.toString());
        result.put("loss_type", "kto");
        result.put("beta", b);
        result.put("examples", pd.kTrain.size());
        result.put("loss", r.loss());
        r.metrics().forEach((k, v) -> { if (Double.isFinite(v)) result.put(k, v); });
        if (json) System.out.println(new ObjectMapper().writeValueAsString(result));
        else System.out.printf("%s: %d KTO examples, loss %.4f, KL %.4f, reward margin %.4f%n", data, pd.kTrain.size(), r.loss(),
                r.metrics().getOrDefault("kl", Double.NaN), r.metrics().getOrDefault("rewards/margins", Double.NaN));
        return 0;
    }
}
