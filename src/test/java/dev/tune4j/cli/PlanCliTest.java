package dev.tune4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** plan and advise end to end, and the planner's prediction held against a real training process's peak RSS. */
class PlanCliTest {
    @TempDir
    Path tmp;

    @Test
    void planPrintsMemoryDevicesCostAndWarnings() throws Exception {
        var r = CliRun.of("plan", "--model", "llama-3.1-8b", "--method", "qlora", "--gpu", "t4,rtx4090,h100", "--price", "t4=0.35",
                "--lr", "1e-3", "--r", "128", "--lora-alpha", "128", "--examples", "300", "--epochs", "10");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("weights (NF4 linears, rest bf16)").contains("predicted peak").contains("rtx4090").contains("h100")
                .contains("Warnings").contains("r=128 > 64").contains("10 epochs on 300").contains("Data set size");
        var json = new ObjectMapper().readTree(CliRun.of("plan", "--model", "llama-2-7b", "--method", "full", "--gpu", "a100-80gb,h200", "--json").out());
        var a100 = json.at("/devices/0");
        assertThat(a100.get("device").asText()).isEqualTo("a100-80gb");
        assertThat(a100.get("fits").asBoolean()).isFalse();
        assertThat(a100.get("devices_needed").asInt()).isEqualTo(2);
        assertThat(json.at("/devices/1/fits").asBoolean()).isTrue();
        assertThat(json.at("/devices/1/usd").asDouble()).isPositive();
        assertThat(json.at("/memory/components/master weights (fp32)").asLong()).isEqualTo(4 * 6_738_415_616L);
        assertThat(json.at("/warnings").toString()).contains("mix in at least 5 %");
        var md = CliRun.of("plan", "--model", "smollm2-135m", "--gpu", "this-machine", "--markdown");
        assertThat(md.out()).startsWith("# smollm2-135m").contains("| this-machine |");
    }

    @Test
    void planCountsTokensOfADataFileWithTheModelsTokenizer() throws Exception {
        Path data = tmp.resolve("d.jsonl");
        Files.writeString(data, "{\"instruction\": \"Say hi\", \"output\": \"hi there\"}\n".repeat(20));
        var r = CliRun.of("plan", "--model", "smollm2-135m", "--data", data.toString(), "--tokenizer", Golden.asset("tokenizer-smollm2-135m").toString(),
                "--gpu", "t4", "--json", "--seq-len", "64");
        assertThat(r.code()).as(r.err()).isZero();
        var j = new ObjectMapper().readTree(r.out());
        assertThat(j.at("/compute/examples").asLong()).isEqualTo(20);
        assertThat(j.at("/compute/tokens_source").asText()).startsWith("measured with the tokenizer");
        assertThat(j.at("/compute/tokens_per_epoch").asLong()).isBetween(20L * 5, 20L * 64);
        var noTok = CliRun.of("plan", "--model", "smollm2-135m", "--data", data.toString());
        assertThat(noTok.code()).isEqualTo(2);
        assertThat(noTok.err()).contains("needs --tokenizer");
    }

    @Test
    void planModelsPreferenceStagesWithTheirReference() throws Exception {
        var r = CliRun.of("plan", "--model", "qwen2.5-0.5b", "--stage", "dpo", "--batch-size", "4", "--seq-len", "1024", "--gpu", "h100", "--json");
        assertThat(r.code()).as(r.err()).isZero();
        var j = new ObjectMapper().readTree(r.out());
        assertThat(j.at("/method/stage").asText()).isEqualTo("dpo");
        assertThat(j.at("/method/reference").asText()).isEqualTo("pass");
        assertThat(j.at("/memory/rows").asLong()).isEqualTo(8);
        var parts = j.at("/memory/components");
        assertThat(parts.has("activations (chosen + rejected rows)")).isTrue();
        assertThat(parts.has("reference pass (no grad, before the policy pass; above activations)")).isTrue();
        assertThat(j.at("/compute/reference_flops_per_token").asDouble()).isPositive();
        assertThat(j.at("/compute/tokens_per_epoch").asLong()).isEqualTo(10_000L * 2 * 512);
        var sft = new ObjectMapper().readTree(CliRun.of("plan", "--model", "qwen2.5-0.5b", "--batch-size", "8", "--seq-len", "1024", "--gpu", "h100", "--json").out());
        assertThat(parts.get("activations (chosen + rejected rows)").asLong()).isEqualTo(sft.at("/memory/components/activations").asLong());

        var stored = new ObjectMapper().readTree(CliRun.of("plan", "--model", "qwen2.5-0.5b", "--stage", "dpo", "--precompute-ref-logps", "--examples", "1000", "--gpu", "h100", "--json").out());
        assertThat(stored.at("/memory/components/reference log-probs (stored, 16 B per item)").asLong()).isEqualTo(16_000);
        assertThat(stored.at("/memory/components").has("reference pass (no grad, before the policy pass; above activations)")).isFalse();
        assertThat(stored.at("/compute/reference_one_off_flops").asDouble()).isPositive();
        var copy = CliRun.of("plan", "--model", "qwen2.5-0.5b", "--method", "full", "--stage", "dpo", "--ref-copy", "--gpu", "h100");
        assertThat(copy.out()).contains("stage dpo, reference copy").contains("reference model (frozen copy at the compute dtype)").contains("incl. ");
        var orpo = CliRun.of("plan", "--model", "qwen2.5-0.5b", "--stage", "orpo", "--gpu", "h100");
        assertThat(orpo.out()).contains("batch 1 pairs = 2 rows").doesNotContain("reference");
        assertThat(CliRun.of("plan", "--model", "qwen2.5-0.5b", "--stage", "kto", "--gpu", "h100").out()).contains("activations (completion + KL rows)");
    }

    @Test
    void badPlanInputsAreNamed() {
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--gpu", "tpu").err()).contains("unknown GPU 'tpu'");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--price", "tpu=1").err()).contains("unknown GPU 'tpu'");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--method", "dora").err()).contains("expected full, lora or qlora, found 'dora'");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--precision", "fp8").err()).contains("found 'fp8'");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--target-modules", "qproj").code()).isEqualTo(2);
        var stage = CliRun.of("plan", "--model", "llama-2-7b", "--stage", "rlhf");
        assertThat(stage.code()).isEqualTo(2);
        assertThat(stage.err()).contains("--stage: expected sft, pt, dpo, kto, orpo or simpo, found 'rlhf'");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--stage", "simpo", "--precompute-ref-logps").err()).contains("stage simpo has no reference");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--stage", "dpo", "--ref-copy").err()).contains("--ref-copy plans a frozen copy of the full model");
        assertThat(CliRun.of("plan", "--model", "llama-2-7b", "--method", "full", "--from-adapter").code()).isEqualTo(2);
    }

    @Test
    void adviseWalksTheQuestionsFromFlagsAndFromStdin() throws Exception {
        var r = CliRun.of("advise", "--few-shot-works", "no", "--external-knowledge", "no", "--examples", "5000", "--style-or-behavior", "yes",
                "--prompting-exhausted", "yes", "--goal", "response-quality", "--gpu", "rtx4090", "--model", "llama-2-13b", "--gpus", "2", "--variants", "5");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("fine tune at all: fine-tune").contains("path: LoRA / QLoRA").contains("goal: SFT + DPO")
                .contains("[seed 002]").contains("is wrong").contains("recommendation: lora").contains("A100-80GB needed");
        assertThat(CliRun.of("advise", "--few-shot-works", "yes").out()).contains("in-context learning").doesNotContain("path:");
        assertThat(CliRun.of("advise", "--few-shot-works", "maybe").code()).isEqualTo(2);
        var in = System.in;
        try {
            System.setIn(new ByteArrayInputStream("no\nno\nno\n2000\nyes\nyes\nyes\nno\nskip\nno\nno\noutput-format\n24\n".getBytes(StandardCharsets.UTF_8)));
            var i = CliRun.of("advise", "--interactive", "--json");
            assertThat(i.code()).as(i.err()).isZero();
            var j = new ObjectMapper().readTree(i.out());
            assertThat(j.at("/fine_tune_at_all/answer").asText()).isEqualTo("fine-tune");
            assertThat(j.at("/path/answer").asText()).isEqualTo("LoRA / QLoRA");
            assertThat(j.at("/goal/answer").asText()).isEqualTo("SFT");
            assertThat(j.at("/vram_tier/answer").asText()).isEqualTo("LoRA or QLoRA on any model");
            assertThat(i.err()).contains("Can 2–10 examples");
        } finally {
            System.setIn(in);
        }
    }

    /** The long flags of a printed "tune4j train" command, as train's key table reads them. */
    static dev.tune4j.train.TrainConfig trainConfigOf(String command) {
        assertThat(command).startsWith("tune4j train ");
        String[] a = command.substring("tune4j train ".length()).split(" ");
        var m = new java.util.LinkedHashMap<String, String>();
        for (int i = 0; i < a.length; i += 2) m.put(a[i].substring(2), a[i + 1]);
        return dev.tune4j.train.TrainConfig.fromMap(m, command);
    }

    @Test
    void advisePrintsTheCommandsThatRunSftThenDpo() throws Exception {
        var r = CliRun.of("advise", "--few-shot-works", "no", "--external-knowledge", "no", "--examples", "5000", "--style-or-behavior", "yes",
                "--prompting-exhausted", "yes", "--goal", "response-quality", "--model", "llama-2-13b", "--gpus", "2", "--variants", "5");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("commands (SFT + DPO with lora;")
                .contains("  tune4j plan --model llama-2-13b --method lora --stage dpo --from-adapter\n")
                .contains("  tune4j train --stage sft --model MODEL --method lora --data SFT_DATA --out RUN/sft\n")
                .contains("  tune4j train --stage dpo --model MODEL --method lora --adapter RUN/sft/adapter --data PAIRS --out RUN/dpo\n");
        // the printed commands are valid for train's key table, and the DPO run continues the SFT adapter
        var j = new ObjectMapper().readTree(CliRun.of("advise", "--few-shot-works", "no", "--external-knowledge", "no", "--examples", "5000", "--style-or-behavior", "yes",
                "--prompting-exhausted", "yes", "--goal", "response-quality", "--model", Golden.golden("models/llama-tied").toString(), "--json").out());
        var cmds = j.get("commands");
        assertThat(cmds).hasSize(3);
        assertThat(cmds.get(0).asText()).startsWith("tune4j plan --model " + Golden.golden("models/llama-tied"));
        var sft = trainConfigOf(cmds.get(1).asText());
        var dpo = trainConfigOf(cmds.get(2).asText());
        assertThat(sft.stage()).isEqualTo("sft");
        assertThat(sft.model()).isEqualTo(Golden.golden("models/llama-tied"));
        assertThat(dpo.stage()).isEqualTo("dpo");
        assertThat(dpo.adapter()).isEqualTo(sft.out().resolve("adapter"));
        // full fine-tuning continues the SFT model folder; "DPO" alone is one command
        assertThat(AdviseCommand.commands(false, null, "full")).containsExactly("tune4j train --stage sft --model MODEL --method full --data SFT_DATA --out RUN/sft",
                "tune4j train --stage dpo --model RUN/sft/model --method full --data PAIRS --out RUN/dpo");
        assertThat(trainConfigOf(AdviseCommand.commands(false, null, "full").get(1)).model()).isEqualTo(Path.of("RUN/sft/model"));
        var harm = CliRun.of("advise", "--few-shot-works", "no", "--external-knowledge", "no", "--examples", "5000", "--style-or-behavior", "yes",
                "--prompting-exhausted", "yes", "--goal", "reduce-harm", "--vram-gb", "12");
        assertThat(harm.out()).contains("commands (DPO with qlora;").contains("  tune4j train --stage dpo --model MODEL --method qlora --data PAIRS --out RUN/dpo\n")
                .doesNotContain("--stage sft");
        assertThat(CliRun.of("advise", "--few-shot-works", "no", "--external-knowledge", "no", "--examples", "5000", "--style-or-behavior", "yes",
                "--prompting-exhausted", "yes", "--goal", "output-format").out()).doesNotContain("commands");
    }

    /** A fresh process (its peak RSS is its own): bench train prints the planner's peak next to the measured one. */
    @Test
    void predictedPeakIsWithin15PercentOfAMeasuredTrainingRun() throws Exception {
        for (String method : List.of("lora", "full")) {
            var cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                    "--sun-misc-unsafe-memory-access=allow", "-Dorg.bytedeco.javacpp.maxphysicalbytes=0", "-cp", System.getProperty("java.class.path"),
                    Main.class.getName(), "bench", "train", "--shape", "stories260k", "--method", method, "--batch-size", "16", "--seq-len", "256",
                    "--steps", "2", "--json"));
            Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
            var j = new ObjectMapper().readTree(out);
            double measured = j.get("peak_rss_mib").asDouble(), predicted = j.get("predicted_peak_mib").asDouble();
            assertThat(Math.abs(predicted - measured) / measured).as("%s: predicted %.0f MiB, measured %.0f MiB", method, predicted, measured).isLessThan(0.15);
        }
    }
}
