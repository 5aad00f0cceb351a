package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import dev.tune4j.hf.*;
import dev.tune4j.text.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;

/** End-to-end runs of the CLI on real files, and the exit code and message of bad input. */
class CliTest {
    @TempDir
    Path tmp;

    static final ObjectMapper JSON = new ObjectMapper();

    static CliRun run(String... args) {
        return CliRun.of(args);
    }

    Path convertStories() {
        Path out = tmp.resolve("stories-hf");
        CliRun r = run("convert", "llama2c", "--model", Golden.asset("stories260K/stories260K.bin").toString(),
                "--tokenizer", Golden.asset("stories260K/tok512.bin").toString(), "--out", out.toString());
        assertThat(r.code()).as(r.err()).isZero();
        return out;
    }

    @Test
    void convertLlama2cEqualsTheGoldenHfCopy() throws Exception {
        Path out = convertStories();
        Path golden = Golden.golden("stories260K/hf");
        assertThat(JSON.readTree(out.resolve("config.json").toFile()))
                .isEqualTo(((com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(golden.resolve("config.json").toFile())).without("_name_or_path"));
        try (Safetensors mine = Safetensors.open(out.resolve("model.safetensors")); Safetensors ref = Safetensors.open(golden.resolve("model.safetensors"))) {
            assertThat(mine.tensors()).extracting(TensorInfo::name).containsExactlyInAnyOrderElementsOf(ref.tensors().stream().map(TensorInfo::name).toList());
            for (TensorInfo t : ref.tensors()) assertThat(mine.floats(t.name())).as(t.name()).containsExactly(ref.floats(t.name()));
        }
    }

    @Test
    void convertedTokenizerEncodesLikeLlama2cAndGeneratesKarpathysStory() throws Exception {
        Path out = convertStories();
        JsonNode loss = JSON.readTree(Golden.golden("stories260K/loss.json").toFile());
        String text = Files.readString(Golden.asset("tinystories-sample/tinystories_sample.txt"));
        var ids = new ArrayList<Long>();
        try (Tokenizer tok = Tokenizer.load(out)) {
            for (String story : text.split("<\\|endoftext\\|>")) {
                if (story.strip().isEmpty()) continue;
                for (long id : tok.encode(story.strip(), true)) ids.add(id);
            }
            assertThat(ids).containsExactlyElementsOf(Arrays.stream(Golden.longs(loss.get("token_ids"))).boxed().toList());
            JsonNode gen = JSON.readTree(Golden.golden("stories260K/generate.json").toFile());
            assertThat(tok.decode(Golden.longs(gen.get("generated_ids")), true)).isEqualTo(gen.get("decoded").asText());
        }
        JsonNode gen = JSON.readTree(Golden.golden("stories260K/generate.json").toFile());
        CliRun r = run("generate", "--model", out.toString(), "--prompt-ids", "[1]", "--max-new-tokens", "60", "--ignore-eos", "--ids");
        assertThat(r.code()).as(r.err()).isZero();
        String[] lines = r.out().strip().split("\n");
        assertThat(JSON.readTree(lines[lines.length - 1])).isEqualTo(gen.get("generated_ids"));
        assertThat(r.out()).startsWith(gen.get("expected_prefix_from_karpathy_doc").asText());
    }

    @Test
    void generateFromTextStopsAtStopString() {
        Path out = convertStories();
        CliRun r = run("generate", "--model", out.toString(), "--prompt", "Once upon a time", "--max-new-tokens", "40", "--stop", "Lily");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).isEqualTo(", there was a little girl named \n");
        assertThat(r.err()).contains("STOP_STRING");
    }

    @Test
    void chatReadsTurnsFromStdinAndKeepsHistory() throws Exception {
        Path out = convertStories();
        // give the converted folder a chat template: turns joined as plain story text
        Path cfg = out.resolve("tokenizer_config.json");
        var node = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(cfg.toFile());
        node.put("chat_template", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% if m.role == 'assistant' %} {% endif %}{% endfor %}");
        Files.writeString(cfg, node.toString());
        var oldIn = System.in;
        try {
            System.setIn(new java.io.ByteArrayInputStream("Once upon a time\n/reset\nLily\n/exit\n".getBytes(StandardCharsets.UTF_8)));
            CliRun r = run("chat", "--model", out.toString(), "--max-new-tokens", "12");
            assertThat(r.code()).as(r.err()).isZero();
            // greedy from "Once upon a time" continues karpathy's story; after /reset the second turn starts fresh
            assertThat(r.out()).contains(", there was a little girl named Lily");
            assertThat(r.out().split("> ", -1)).hasSize(5); // a prompt before each of the four input lines
            assertThat(r.out()).contains(" and Tom were playing"); // "Lily" after /reset: no earlier turn in the context
        } finally {
            System.setIn(oldIn);
        }
        CliRun none = run("chat", "--model", Golden.golden("stories260K/hf").toString());
        assertThat(none.code()).isEqualTo(2);
        assertThat(none.err()).contains("tokenizer.json");
    }

    @Test
    void templateCommandPrintsTheGoldenRendering() throws Exception {
        JsonNode golden = JSON.readTree(Golden.golden("chat/tokenizer-qwen3-hf.json").toFile());
        JsonNode c = golden.get("cases").get(3);
        Path msgs = tmp.resolve("m.json");
        Files.writeString(msgs, c.get("messages").toString());
        CliRun r = run("template", "--model", Golden.asset("tokenizer-qwen3-hf").toString(), "--messages", msgs.toString(), "--add-generation-prompt");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).isEqualTo(c.get("rendered").asText());
    }

    @Test
    void logitsCommandWithLeftPaddedSafetensorsInput() throws Exception {
        Path caseFile = Golden.golden("cases/llama-untied/forward.safetensors");
        long[] ids, want;
        float[] wantLogits;
        try (Safetensors g = Safetensors.open(caseFile)) {
            ids = g.longs("input_ids");
            wantLogits = g.floats("logits");
        }
        int t = 24, v = 256, pad = 5;
        // row 0 unpadded; row 1 = the first 19 ids of row 0, left-padded by 5
        long[] in = new long[2 * t], mask = new long[2 * t];
        for (int j = 0; j < t; j++) {
            in[j] = ids[j];
            mask[j] = 1;
            if (j >= pad) {
                in[t + j] = ids[j - pad];
                mask[t + j] = 1;
            }
        }
        Path input = tmp.resolve("in.safetensors");
        SafetensorsWriter.write(input, Map.of("input_ids", TensorBlob.ofLongs(in, 2, t), "attention_mask", TensorBlob.ofLongs(mask, 2, t)), Map.of());
        Path outFile = tmp.resolve("logits.safetensors");
        CliRun r = run("logits", "--model", Golden.golden("models/llama-untied").toString(), "--input", input.toString(), "--out", outFile.toString());
        assertThat(r.code()).as(r.err()).isZero();
        try (Safetensors o = Safetensors.open(outFile)) {
            assertThat(o.info("logits").shape()).containsExactly(2, t, v);
            float[] got = o.floats("logits");
            assertClose("row 0", Arrays.copyOf(got, t * v), Arrays.copyOf(wantLogits, t * v), 1e-4);
            assertClose("left-padded row 1", Arrays.copyOfRange(got, (t + pad) * v, 2 * t * v), Arrays.copyOf(wantLogits, (t - pad) * v), 1e-4);
        }
        CliRun json = run("logits", "--model", Golden.golden("models/llama-untied").toString(), "--input", "[1, 2, 3]", "--out", tmp.resolve("j.safetensors").toString());
        assertThat(json.code()).as(json.err()).isZero();
    }

    @Test
    void inspectCountsParametersPerModuleType() {
        CliRun r = run("inspect", Golden.golden("models/qwen2-untied").toString());
        assertThat(r.code()).as(r.err()).isZero();
        // 2 layers: q/k/v biases 64+32+32 per layer; total = embed 256·64 + lm_head 256·64 + layers + norm
        long perLayer = 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 32 + 32 + 3 * 64 * 128 + 2 * 64;
        assertThat(r.out()).contains("Qwen2ForCausalLM").contains("self_attn.q_proj.bias").contains(String.format("%,d", 2 * 256 * 64 + 2 * perLayer + 64));
    }

    // ---- bad input: exit code 2 and a message naming what is wrong (no ../shared needed) ----

    @Test
    void badInputsExitWithCode2AndANamedError() throws Exception {
        Path notAModel = Files.createDirectories(tmp.resolve("empty"));
        CliRun r = run("inspect", notAModel.toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("no config.json").contains(notAModel.toString());

        Path bad = tmp.resolve("bad.bin");
        Files.write(bad, new byte[]{1, 2, 3});
        r = run("convert", "llama2c", "--model", bad.toString(), "--tokenizer", bad.toString(), "--out", tmp.resolve("x").toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("bad.bin").contains("28-byte header");
        assertThat(tmp.resolve("x")).doesNotExist();

        Path msgs = tmp.resolve("m.json");
        Files.writeString(msgs, "[{\"content\": \"no role\"}]");
        r = run("template", "--model", tmp.toString(), "--messages", msgs.toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("message 0");

        r = run("generate", "--model", tmp.toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--prompt");
    }

    @Test
    void everyCommandHasHelp() {
        for (String c : List.of("demo", "inspect", "generate", "chat", "template", "convert", "logits", "bench")) {
            CliRun r = run(c, "--help");
            assertThat(r.code()).as(c).isZero();
            assertThat(r.out()).as(c).contains("Usage:");
        }
    }

    @Test
    void demoPretrainsFineTunesAndCompares() {
        CliRun r = run("demo", "--out", tmp.resolve("demo").toString(), "--pretrain-steps", "30");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("greedy: Once upon a time, there was a little girl named Lily");
        assertThat(r.out()).contains("pretraining LlamaForCausalLM from scratch").contains("exact match").contains("validation loss");
        assertThat(tmp.resolve("demo/lora-run/adapter/adapter_model.safetensors")).exists();
        assertThat(tmp.resolve("demo/base/model.safetensors")).exists();
        // the table row: validation loss before and after; LoRA must lower it
        var m = java.util.regex.Pattern.compile("validation loss \\(nats/token\\)\\s+([0-9.]+)\\s+([0-9.]+)").matcher(r.out());
        assertThat(m.find()).isTrue();
        assertThat(Double.parseDouble(m.group(2))).isLessThan(Double.parseDouble(m.group(1)));
        CliRun again = run("demo", "--out", tmp.resolve("demo").toString(), "--pretrain-steps", "30");
        assertThat(again.out()).contains("base model cached");
    }
}
