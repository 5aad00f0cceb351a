package dev.tune4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.data.*;
import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.hf.Llama2cImport;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.recipes.Run;
import dev.tune4j.recipes.Pretrain;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.text.Tokenizer;
import dev.tune4j.train.Batches;
import dev.tune4j.train.Evaluation;
import dev.tune4j.train.TrainConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.*;
import java.util.concurrent.Callable;

/**
 * The whole path on data and a model the project makes itself, with no network and no ../shared:
 * 1. llama2.c import of the embedded stories260K (its tokenizer is reused; its greedy story checks the model code);
 * 2. pretraining a small Llama from scratch on generated stories (cached for reruns);
 * 3. LoRA SFT on a generated instruction set, with validation loss and exact match on held-out questions before and after,
 *    sample answers, and the PEFT adapter saved.
 */
@Command(name = "demo", mixinStandardHelpOptions = true, description = "Run the built-in end-to-end demo: pretrain a small model, LoRA-fine-tune it, DPO it toward a preferred style, compare.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--out", defaultValue = ".tune4j/demo", description = "work folder (default ${DEFAULT-VALUE})")
    Path out;

    @Option(names = "--fresh", description = "pretrain the base again even if a cached one exists")
    boolean fresh;

    @Option(names = "--pretrain-steps", defaultValue = "300", description = "pretraining steps (default ${DEFAULT-VALUE})")
    int pretrainSteps;

    /** The base model the demo pretrains: 4 layers of width 128, the stories260K tokenizer's 512 tokens. */
    static ModelConfig baseConfig() {
        return new ModelConfig(ModelConfig.Arch.LLAMA, 512, 128, 344, 4, 4, 2, 32, 1e-5, 10_000, ModelConfig.RopeScaling.NONE,
                256, true, false, false, false, 0, 1, List.of(2), null, "float32");
    }

    static String prompt(String question) {
        return "### Instruction:\n" + question + "\n\n### Response:\n";
    }

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        // the demo reuses its own work folder (the pretrained base is cached there), but never writes into another folder
        boolean demoFolder = Files.exists(out.resolve("base.stamp")) || Files.exists(out.resolve("stories260K-hf")) || Files.exists(out.resolve("lora-run"));
        dev.tune4j.hf.OutputPaths.check(out, dev.tune4j.hf.OutputPaths.Kind.FOLDER, demoFolder,
                "it is not a demo work folder (no base.stamp): give an empty or new --out", List.of());
        Files.createDirectories(out);
        var json = new ObjectMapper();

        // 1. llama2.c import: a real pretrained model, converted, must tell karpathy's story
        Path stories = out.resolve("stories260K-hf");
        Llama2cImport.convert(extract("stories260K.bin"), extract("tok512.bin"), stories);
        try (ModelFolder f = ModelFolder.open(stories); LlamaModel m = LlamaModel.load(f, Compute.auto()); Tokenizer t = Tokenizer.load(stories)) {
            var r = Generator.generate(m, new long[]{1}, GenerationConfig.greedy(24), x -> t.decode(x, true), null);
            System.out.println("1. llama2.c import of stories260K → " + stories + "\n   greedy: " + r.text().strip() + " …");
        }

        // 2. pretrain a base model from scratch on generated stories (cached)
        Path base = out.resolve("base");
        String stamp = "steps=" + pretrainSteps + " config=" + baseConfig();
        Path stampFile = out.resolve("base.stamp");
        try (Tokenizer tok = Tokenizer.load(stories)) {
            if (fresh || !Files.exists(base.resolve("model.safetensors")) || !Files.exists(stampFile) || !Files.readString(stampFile).equals(stamp)) {
                Path corpus = out.resolve("corpus.txt");
                Files.writeString(corpus, Synthetic.stories(4000, 1));
                var dc = new DataConfig(corpus, Format.TEXT, Encoder.PromptStyle.ALPACA, 128, 0.02, null, null, 0, false, 1);
                Dataset ds = Dataset.load(dc, tok, 2);
                System.out.println("2. pretraining a base model from scratch on " + ds.train.size() + " generated stories (" + corpus + ")");
                Pretrain.run(new Pretrain.Settings(baseConfig(), stories, pretrainSteps, 16, 128, 3e-3, 1), ds.train, ds.val, base, System.out);
                Files.writeString(stampFile, stamp);
            } else System.out.println("2. base model cached in " + base + " (--fresh pretrains again)");
        }

        // 3. instruction data: every name × animal question; a fifth is held out for the before/after comparison
        var qa = Synthetic.animalQuestions(3);
        int holdout = qa.size() / 5;
        var heldOut = qa.subList(0, holdout);
        Path sft = out.resolve("animals.json");
        var rows = new ArrayList<Map<String, String>>();
        // a third of the answers are chatty ("The sheep says baa too."): the SFT model can say both, and prefers the plain style that DPO then changes
        for (String[] p : qa.subList(holdout, qa.size())) rows.add(Map.of("instruction", p[0], "input", "", "output", rows.size() % 3 == 2 ? excited(p[1]) : p[1]));
        Files.writeString(sft, json.writeValueAsString(rows));
        Path heldOutFile = out.resolve("animals-heldout.json");
        var heldRows = new ArrayList<Map<String, String>>();
        for (String[] p : heldOut) heldRows.add(Map.of("instruction", p[0], "input", "", "output", p[1]));
        Files.writeString(heldOutFile, json.writeValueAsString(heldRows));

        Path run = out.resolve("lora-run");
        var before = evaluate(base, null, heldOut, heldOutFile);
        System.out.printf("3. LoRA SFT on %d instructions (%s); %d questions held out%n", rows.size(), sft, heldOut.size());
        // the demo's own run folders are rewritten on every run (overwrite)
        var sftRun = config("model", base, "data", sft, "out", run, "prompt-style", "alpaca", "epochs", 3, "batch-size", 16, "lr", "2e-3",
                "max-seq-len", 96, "val-ratio", 0.1, "seed", 1, "overwrite", true);
        var summary = Run.run(sftRun, System.out);
        var after = evaluate(base, summary.output(), heldOut, heldOutFile);

        System.out.println();
        System.out.println("   before vs after LoRA, on the held-out questions:");
        System.out.printf("   %-28s %10s %10s%n", "", "base", "+ LoRA");
        System.out.printf("   %-28s %10.4f %10.4f%n", "validation loss (nats/token)", before.loss(), after.loss());
        System.out.printf("   %-28s %9.1f%% %9.1f%%%n", "exact match", 100 * before.exact(), 100 * after.exact());
        for (int i = 0; i < 3; i++) {
            System.out.println("   Q: " + heldOut.get(i)[0]);
            System.out.println("      base:   " + before.samples().get(i));
            System.out.println("      + LoRA: " + after.samples().get(i));
        }
        // 4. DPO from the SFT adapter: the same answers, preferred with enthusiasm ("The dog says woof! Woof!")
        Path pairsFile = out.resolve("animal-pairs.json");
        var pairRows = new ArrayList<Map<String, String>>();
        for (String[] p : qa.subList(holdout, qa.size())) pairRows.add(Map.of("instruction", p[0], "input", "", "chosen", excited(p[1]), "rejected", p[1]));
        Files.writeString(pairsFile, json.writeValueAsString(pairRows));
        Path heldPairsFile = out.resolve("animal-pairs-heldout.json");
        var heldPairRows = new ArrayList<Map<String, String>>();
        for (String[] p : heldOut) heldPairRows.add(Map.of("instruction", p[0], "input", "", "chosen", excited(p[1]), "rejected", p[1]));
        Files.writeString(heldPairsFile, json.writeValueAsString(heldPairRows));
        System.out.printf("%n4. DPO from the SFT adapter on %d preference pairs (%s): preferred answers are chatty (\"%s\")%n",
                pairRows.size(), pairsFile, excited(heldOut.getFirst()[1]));
        var dpoRun = config("model", base, "data", pairsFile, "out", out.resolve("dpo-run"), "stage", "dpo", "adapter", summary.output(),
                "prompt-style", "alpaca", "lora-dropout", 0, "epochs", 2, "batch-size", 8, "lr", "1e-4", "beta", 0.5, "max-seq-len", 96,
                "val-ratio", 0.1, "seed", 1, "overwrite", true);
        var dpo = Run.run(dpoRun, System.out);
        var sftStyle = preferenceShift(base, summary.output(), summary.output(), heldOut, heldPairsFile);
        var dpoStyle = preferenceShift(base, dpo.output(), summary.output(), heldOut, heldPairsFile);
        System.out.println();
        System.out.println("   before vs after DPO, on the held-out questions:");
        System.out.printf("   %-34s %10s %10s%n", "", "SFT", "SFT + DPO");
        System.out.printf("   %-34s %9.1f%% %9.1f%%%n", "reward accuracy (held-out pairs)", 100 * sftStyle.accuracy(), 100 * dpoStyle.accuracy());
        System.out.printf("   %-34s %9.1f%% %9.1f%%%n", "answers in the preferred style", 100 * sftStyle.preferred(), 100 * dpoStyle.preferred());
        for (int i = 0; i < 2; i++) {
            System.out.println("   Q: " + heldOut.get(i)[0]);
            System.out.println("      SFT:       " + sftStyle.samples().get(i));
            System.out.println("      SFT + DPO: " + dpoStyle.samples().get(i));
        }

        System.out.printf("%nadapters (PEFT format): %s (SFT), %s (DPO); whole demo %.1f s, peak memory %.0f MiB%n", summary.output(), dpo.output(),
                (System.nanoTime() - start) / 1e9, Memory.mib(Memory.processPeakBytes()));
        System.out.println("next: ./tune4j generate --model " + base + " --adapter " + dpo.output()
                + " --prompt $'### Instruction:\\nSam sees a dog. What does the dog say?\\n\\n### Response:\\n'");
        return 0;
    }

    /** "The dog says woof." → "The dog says woof too." (the preferred style, in words the small base model knows) */
    static String excited(String answer) {
        return answer.substring(0, answer.length() - 1) + " too.";
    }

    /** A run's keys as train's flags would give them. */
    private static TrainConfig config(Object... keyValues) {
        var m = new LinkedHashMap<String, String>();
        for (int i = 0; i < keyValues.length; i += 2) m.put((String) keyValues[i], String.valueOf(keyValues[i + 1]));
        return TrainConfig.fromMap(m, "demo");
    }

    record Shift(double accuracy, double preferred, List<String> samples) {}

    /** Reward accuracy of {@code adapter} against {@code reference} on held-out pairs, and the share of greedy answers in the preferred style. */
    private Shift preferenceShift(Path base, Path adapter, Path reference, List<String[]> heldOut, Path heldPairs) throws Exception {
        try (ModelFolder f = ModelFolder.open(base); LlamaModel m = LlamaModel.load(f, Compute.auto()); Tokenizer t = Tokenizer.load(base);
             LoraAdapter policy = LoraAdapter.load(adapter, m, "default"); LoraAdapter ref = LoraAdapter.load(reference, m, "reference")) {
            ref.enable(false);
            var pairs = PreferenceData.load(new PreferenceDataConfig(heldPairs, null, Encoder.PromptStyle.ALPACA, 96, null, 0, null, false, 0), t, 2).train;
            var cfg = new dev.tune4j.train.PreferenceLoss.Config(dev.tune4j.train.PreferenceLoss.Type.SIGMOID, 0.1, 0, 0, 0);
            var r = dev.tune4j.eval.Preferences.of(m, pairs, cfg, () -> { policy.enable(false); ref.enable(true); }, () -> { ref.enable(false); policy.enable(true); }, 2, 16, 1024);
            int preferred = 0;
            var samples = new ArrayList<String>();
            for (String[] q : heldOut) {
                var g = Generator.generate(m, t.encode(prompt(q[0]), true), GenerationConfig.greedy(20).withEos(List.of(2)), x -> t.decode(x, true), null);
                String answer = g.text().strip();
                if (answer.equals(excited(q[1]))) preferred++;
                if (samples.size() < 2) samples.add(answer.replace("\n", " ⏎ "));
            }
            return new Shift(r.metrics().get("rewards/accuracies"), (double) preferred / heldOut.size(), samples);
        }
    }

    record Score(double loss, double exact, List<String> samples) {}

    /** Mean loss on the held-out answers and exact match of greedy answers, with or without the adapter. */
    private Score evaluate(Path base, Path adapter, List<String[]> heldOut, Path heldOutFile) throws Exception {
        try (ModelFolder f = ModelFolder.open(base); LlamaModel m = LlamaModel.load(f, Compute.auto()); Tokenizer t = Tokenizer.load(base);
             LoraAdapter lora = adapter == null ? null : LoraAdapter.load(adapter, m)) {
            var ds = Dataset.load(new DataConfig(heldOutFile, Format.ALPACA, Encoder.PromptStyle.ALPACA, 96, 0, null, null, 0, false, 0), t, 2);
            double loss = Evaluation.run(m, new Batches(ds.train, 16, 96, false, 2, 0)).loss();
            int right = 0;
            var samples = new ArrayList<String>();
            for (String[] q : heldOut) {
                var r = Generator.generate(m, t.encode(prompt(q[0]), true), GenerationConfig.greedy(16).withEos(List.of(2)), x -> t.decode(x, true), null);
                String answer = r.text().strip();
                if (answer.equals(q[1]) || answer.equals(excited(q[1]))) right++; // the facts, in either style
                if (samples.size() < 3) samples.add(answer.replace("\n", " ⏎ "));
            }
            return new Score(loss, (double) right / heldOut.size(), samples);
        }
    }

    private Path extract(String name) throws Exception {
        Path p = out.resolve(name);
        try (InputStream in = Objects.requireNonNull(DemoCommand.class.getResourceAsStream("/dev/tune4j/demo/" + name), name)) {
            Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
        }
        return p;
    }
}
