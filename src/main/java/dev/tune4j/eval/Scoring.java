package dev.tune4j.eval;

import dev.tune4j.train.StepProgress;

import dev.tune4j.data.*;
import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.text.Tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Generation-based scores on prompts with known answers: greedy answers compared with the expected text by exact match
 * (after trimming), containment, and optionally a regular expression the answer must contain a match of.
 */
public final class Scoring {
    private Scoring() {}

    public record Sample(String prompt, String expected, String answer, boolean exact, boolean contains, Boolean regex) {}

    public record Result(int n, double exactMatch, double contains, Double regex, List<Sample> samples) {}

    /** Sequences decoded together: the prompts share each step's batched pass (continuous batching, generate.Generator). */
    static final int BATCH = 16;

    /** Greedy answers to the prompts of tokenized examples (prompt = tokens before the first supervised one). */
    public static List<Sample> samples(LlamaModel m, Tokenizer tok, List<Example> examples, int n, int maxNewTokens, List<Integer> eos) {
        var prompts = new ArrayList<long[]>();
        var expected = new ArrayList<String>();
        for (Example e : examples.subList(0, Math.min(n, examples.size()))) {
            int start = 0;
            while (start < e.length() && e.labels()[start] == Example.IGNORE) start++;
            if (start == 0 || start == e.length()) continue; // raw text: no prompt to answer
            prompts.add(java.util.Arrays.copyOf(e.ids(), start));
            expected.add(tok.decode(java.util.Arrays.stream(e.labels(), start, e.length()).filter(x -> x != Example.IGNORE).toArray(), true).strip());
        }
        List<Generator.Result> answers;
        try (var bar = StepProgress.phase("samples", (long) prompts.size() * maxNewTokens, " tokens")) { // at most; answers may end sooner
            answers = Generator.generateAll(m, prompts, GenerationConfig.greedy(maxNewTokens).withEos(eos), x -> tok.decode(x, true), id -> bar.step(), BATCH);
        }
        var out = new ArrayList<Sample>();
        for (int i = 0; i < prompts.size(); i++) {
            String answer = answers.get(i).text().strip();
            out.add(new Sample(tok.decode(prompts.get(i), true), expected.get(i), answer, answer.equals(expected.get(i)), answer.contains(expected.get(i)), null));
        }
        return out;
    }

    public static Result run(LlamaModel m, Tokenizer tok, Encoder enc, List<Row> rows, Format format, int maxNewTokens,
                             List<Integer> eos, Pattern regex) {
        var prompts = new ArrayList<Encoder.Prompt>();
        for (Row row : rows) prompts.add(enc.prompt(row, format));
        List<Generator.Result> answers;
        try (var bar = StepProgress.phase("generation", (long) prompts.size() * maxNewTokens, " tokens")) { // at most; answers may end sooner
            answers = Generator.generateAll(m, prompts.stream().map(Encoder.Prompt::ids).toList(), GenerationConfig.greedy(maxNewTokens).withEos(eos),
                    x -> tok.decode(x, true), id -> bar.step(), BATCH);
        }
        var samples = new ArrayList<Sample>();
        int exact = 0, contains = 0, re = 0;
        for (int i = 0; i < prompts.size(); i++) {
            var p = prompts.get(i);
            String answer = answers.get(i).text().strip(), expected = p.expected().strip();
            boolean ex = answer.equals(expected), co = answer.contains(expected);
            Boolean rx = regex == null ? null : regex.matcher(answer).find();
            if (ex) exact++;
            if (co) contains++;
            if (Boolean.TRUE.equals(rx)) re++;
            samples.add(new Sample(tok.decode(p.ids(), true), expected, answer, ex, co, rx));
        }
        int n = rows.size();
        return new Result(n, n == 0 ? 0 : (double) exact / n, n == 0 ? 0 : (double) contains / n, regex == null ? null : (double) re / n, samples);
    }
}
