package dev.tune4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.data.*;
import dev.tune4j.eval.Forgetting;
import dev.tune4j.eval.Perplexity;
import dev.tune4j.eval.Scoring;
import dev.tune4j.peft.LoraAdapter;
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

    @Override
    public Integer call() throws Exception {
        if (data == null && !forgetting) throw new Main.BadInput("give --data FILE, --forgetting --general FILE, or both");
        if (forgetting && (general == null || (adapter == null) == (tunedModel == null)))
            throw new Main.BadInput("--forgetting needs --general FILE and either --adapter DIR or --tuned-model DIR");
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
                    var style = promptStyle != null ? Encoder.PromptStyle.valueOf(promptStyle.toUpperCase())
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
}
