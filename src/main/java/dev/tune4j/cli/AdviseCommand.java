package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.plan.Catalog;
import dev.tune4j.plan.Gpus;
import dev.tune4j.plan.Rules;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * Walks the seeds' decision questions: fine-tune at all (seed 003), which path (seed 000), goal and data size (seed 002),
 * VRAM tier (seed 002, recomputed), and seed 001's recommendation with GPUs and cost per method. Answers come from flags;
 * with --interactive (or on a terminal with no answers given) the missing ones are asked on stdin.
 */
@Command(name = "advise", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Should you fine-tune, and how? The seeds' decision rules with the reason for every branch.")
final class AdviseCommand implements Callable<Integer> {
    @Option(names = "--few-shot-works", arity = "1", description = "yes/no: can 2–10 examples in the prompt show the task?")
    Boolean fewShot;
    @Option(names = "--external-knowledge", arity = "1", description = "yes/no: is it mainly about looking up documents?")
    Boolean external;
    @Option(names = "--changing-facts", arity = "1", description = "yes/no: does the knowledge change daily or weekly?")
    Boolean changing;
    @Option(names = "--examples", description = "high-quality training examples (instruction pairs)")
    Long examples;
    @Option(names = "--style-or-behavior", arity = "1", description = "yes/no: is it style, behaviour, format or specialised reasoning?")
    Boolean style;
    @Option(names = "--success-metric", arity = "1", description = "yes/no: is there evaluation data to measure success?")
    Boolean metric;
    @Option(names = "--prompting-exhausted", arity = "1", description = "yes/no: have prompt engineering and few-shot been exhausted?")
    Boolean exhausted;
    @Option(names = "--domain-covered", arity = "1", description = "yes/no: does an off-the-shelf model already cover the domain?")
    Boolean covered;
    @Option(names = "--domain-tokens", description = "raw domain text, in tokens")
    Long domainTokens;
    @Option(names = "--laptop", arity = "1", description = "yes/no: must training fit a laptop?")
    Boolean laptop;
    @Option(names = "--separate-license", arity = "1", description = "yes/no: must the base model's license stay separate (share only an adapter)?")
    Boolean license;
    @Option(names = "--goal", description = "domain-knowledge, response-quality, output-format, reduce-harm or max-customization")
    String goal;
    @Option(names = "--vram-gb", description = "GPU memory in GB (or give --gpu)")
    Double vram;
    @Option(names = "--gpu", description = "a catalog device; its memory answers --vram-gb")
    String gpu;
    @Option(names = "--model", description = "catalog name or model folder, for seed 001's recommendation")
    String model;
    @Option(names = "--objective", defaultValue = "instruction", description = "instruction, domain_knowledge or task_specific (default ${DEFAULT-VALUE})")
    String objective;
    @Option(names = "--gpus", defaultValue = "1", description = "A100-80GB-equivalent GPUs available (default ${DEFAULT-VALUE})")
    int gpus;
    @Option(names = "--variants", defaultValue = "1", description = "fine-tuned variants needed (default ${DEFAULT-VALUE})")
    int variants;
    @Option(names = "--budget", description = "training budget in USD")
    Double budget;
    @Option(names = "--tokens-per-example", defaultValue = "512", description = "(default ${DEFAULT-VALUE})")
    int tokensPerExample;
    @Option(names = "--price", defaultValue = "1.90", description = "USD per A100-80GB hour (default ${DEFAULT-VALUE})")
    double price;
    @Option(names = "--interactive", description = "ask every unanswered question on stdin")
    boolean interactive;
    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    private BufferedReader in;

    private Boolean askBool(Boolean v, String question) throws Exception {
        if (v != null || in == null) return v;
        while (true) {
            String a = ask(question, "yes/no/skip").toLowerCase(java.util.Locale.ROOT);
            if (a.isEmpty() || a.equals("s") || a.equals("skip")) return null;
            if (a.equals("y") || a.equals("yes")) return true;
            if (a.equals("n") || a.equals("no")) return false;
            System.err.println("please answer yes, no or skip");
        }
    }

    private Long askLong(Long v, String question) throws Exception {
        if (v != null || in == null) return v;
        while (true) {
            String a = ask(question, "number/skip");
            if (a.isEmpty() || a.equals("s") || a.equals("skip")) return null;
            try {
                long n = Long.parseLong(a.replace(",", "").replace("_", ""));
                if (n >= 0) return n;
            } catch (NumberFormatException e) {
                // asked again below
            }
            System.err.println("please answer a whole number >= 0, or skip");
        }
    }

    /** One answer, stripped; end of input before it is a named error (exit 2), not a crash. */
    private String ask(String q, String options) throws Exception {
        System.err.print(q + " [" + options + "] ");
        System.err.flush();
        String a = in.readLine();
        if (a == null) throw new UserError("advise --interactive: input ended before an answer to '" + q + "' [" + options + "]");
        return a.strip();
    }

    /** Every number by name, before any question is asked. */
    private void checkNumbers() {
        if (examples != null) Limits.nonNegative("--examples", examples);
        if (domainTokens != null) Limits.nonNegative("--domain-tokens", domainTokens);
        if (vram != null) Limits.positive("--vram-gb", vram);
        Limits.positive("--gpus", gpus);
        Limits.positive("--variants", variants);
        if (budget != null) Limits.nonNegative("--budget", budget);
        Limits.positive("--tokens-per-example", tokensPerExample);
        Limits.nonNegative("--price", price);
    }

    @Override
    public Integer call() throws Exception {
        boolean none = fewShot == null && external == null && examples == null && goal == null && vram == null && gpu == null && model == null;
        if (interactive || (none && System.console() != null)) in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        if (goal != null && !Rules.GOALS.contains(goal)) throw new UserError("--goal: expected one of " + Rules.GOALS + ", found '" + goal + "'");
        checkNumbers();
        var out = new LinkedHashMap<String, Object>();

        fewShot = askBool(fewShot, "Can 2–10 examples in the prompt show the model the task?");
        if (!Boolean.TRUE.equals(fewShot)) external = askBool(external, "Is the task mainly about looking up external documents?");
        if (!Boolean.TRUE.equals(fewShot) && !Boolean.TRUE.equals(external)) {
            changing = askBool(changing, "Does the knowledge change daily or weekly?");
            examples = askLong(examples, "How many high-quality training examples do you have?");
            style = askBool(style, "Is it about style, behaviour, output format or specialised reasoning?");
            metric = askBool(metric, "Do you have evaluation data to measure success?");
            exhausted = askBool(exhausted, "Have prompt engineering and few-shot truly been exhausted?");
        }
        var first = Rules.fineTuneAtAll(new Rules.Situation(fewShot, external, examples == null ? null : (int) Math.min(Integer.MAX_VALUE, examples), style, exhausted, changing, metric));
        out.put("fine_tune_at_all", first);
        if (first.answer().equals("fine-tune") || first.answer().equals("unknown")) {
            covered = askBool(covered, "Does an off-the-shelf model already cover your domain?");
            domainTokens = askLong(domainTokens, "How many tokens of raw domain text do you have?");
            laptop = askBool(laptop, "Must training fit on a laptop?");
            license = askBool(license, "Must the base model's license stay separate (ship only an adapter)?");
            out.put("path", Rules.path(covered, domainTokens, examples, laptop, license));
            if (goal == null && in != null) {
                while (true) {
                    String g = ask("Goal?", String.join("/", Rules.GOALS) + "/skip");
                    if (g.isEmpty() || g.equals("s") || g.equals("skip")) break;
                    if (Rules.GOALS.contains(g)) {
                        goal = g;
                        break;
                    }
                    System.err.println("please answer one of " + String.join(", ", Rules.GOALS) + ", or skip");
                }
            }
            if (goal != null) out.put("goal", Rules.goal(goal));
            if (examples != null) out.put("dataset_size", Rules.datasetSize(examples));
            if (gpu != null) vram = Gpus.get(gpu).memoryGb();
            if (vram == null && in != null) {
                Long v = askLong(null, "GPU memory in GB?");
                vram = v == null ? null : v.doubleValue();
            }
            if (vram != null) out.put("vram_tier", Rules.vramTier(vram));
            if (model != null) {
                Path p = Path.of(model);
                ModelConfig c = Files.isDirectory(p) ? ModelConfig.load(p.resolve("config.json")) : Catalog.get(model);
                out.put("recommendation", Rules.recommend(c, gpus, examples == null ? 10_000 : examples, tokensPerExample, objective, variants, budget, price));
            }
        }
        var preference = Stream.of("goal", "dataset_size").map(k -> (Rules.Answer) out.get(k)).filter(a -> a != null)
                .map(Rules.Answer::answer).filter(a -> a.equals("DPO") || a.startsWith("SFT + DPO")).findFirst();
        var commands = preference.map(a -> commands(a.equals("DPO"), model, methodOf(out))).orElse(null);
        if (json) {
            if (commands != null) out.put("commands", commands);
            System.out.println(new ObjectMapper().writeValueAsString(out));
            return 0;
        }
        for (var e : out.entrySet()) {
            Object v = e.getValue();
            String answer = v instanceof Rules.Answer a ? a.answer() : ((Rules.Recommendation) v).method();
            List<Rules.Reason> reasons = v instanceof Rules.Answer a ? a.reasons() : ((Rules.Recommendation) v).reasons();
            System.out.printf("%s: %s%n", e.getKey().replace('_', ' '), answer);
            for (Rules.Reason r : reasons) System.out.println("  " + r);
            if (v instanceof Rules.Recommendation rec)
                System.out.printf("  A100-80GB needed: full %s, lora %s, qlora %s; estimated cost: full $%,.2f, lora $%,.2f, qlora $%,.2f%n",
                        n(rec.fullGpus()), n(rec.loraGpus()), n(rec.qloraGpus()), rec.fullUsd(), rec.loraUsd(), rec.qloraUsd());
        }
        if (commands != null) {
            System.out.println("commands (" + preference.get() + " with " + methodOf(out) + "; " + (model != null && Files.isDirectory(Path.of(model)) ? "" : "MODEL: a model folder, ")
                    + "SFT_DATA: instruction data, PAIRS: prompt/chosen/rejected pairs, RUN: a new run folder):");
            commands.forEach(c -> System.out.println("  " + c));
        }
        return 0;
    }

    /** The method the advice chose: seed 001's recommendation, else the data path's full SFT, else QLoRA on a small card, else LoRA. */
    static String methodOf(Map<String, Object> advice) {
        if (advice.get("recommendation") instanceof Rules.Recommendation r) return r.method().equals("full_fine_tuning") ? "full" : r.method();
        if (advice.get("path") instanceof Rules.Answer a && a.answer().equals("full SFT")) return "full";
        if (advice.get("vram_tier") instanceof Rules.Answer a && a.answer().startsWith("QLoRA")) return "qlora";
        return "lora";
    }

    /**
     * The tune4j commands that run an "SFT + DPO" (or "DPO") answer: the memory plan of the DPO stage, SFT into RUN/sft, then
     * DPO from its result (LoRA/QLoRA: the SFT adapter is trained on and, frozen, is the reference; full: the SFT model,
     * with reference log-probs stored before training).
     */
    static List<String> commands(boolean dpoOnly, String model, String method) {
        boolean folder = model != null && Files.isDirectory(Path.of(model)), full = method.equals("full");
        String m = folder ? model : "MODEL", how = " --method " + method;
        var c = new ArrayList<String>();
        if (model != null) c.add("tune4j plan --model " + model + how + " --stage dpo" + (dpoOnly || full ? "" : " --from-adapter"));
        if (dpoOnly) {
            c.add("tune4j train --stage dpo --model " + m + how + " --data PAIRS --out RUN/dpo");
            return c;
        }
        c.add("tune4j train --stage sft --model " + m + how + " --data SFT_DATA --out RUN/sft");
        c.add("tune4j train --stage dpo --model " + (full ? "RUN/sft/model" + how : m + how + " --adapter RUN/sft/adapter") + " --data PAIRS --out RUN/dpo");
        return c;
    }

    private static String n(int gpus) {
        return gpus < 0 ? "does not fit" : String.valueOf(gpus);
    }
}
