package dev.tune4j.data;

import dev.tune4j.EmbeddedModel;
import dev.tune4j.Golden;
import dev.tune4j.text.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.*;

/**
 * Preference formats read and tokenized as TRL 1.9 does: each format's exact ids against the same tokenizer run on the
 * expected strings, the chat-template prompt/completion split, the real asset files, detection, the length rules, and
 * named errors.
 */
class PreferenceDataTest {
    @TempDir
    Path tmp;

    static Tokenizer stories;
    static final long EOS = 2;

    @BeforeAll
    static void load() throws Exception {
        stories = Tokenizer.load(EmbeddedModel.stories260k());
    }

    @AfterAll
    static void close() {
        stories.close();
    }

    Path write(String name, String content) throws Exception {
        Path p = tmp.resolve(name);
        Files.writeString(p, content);
        return p;
    }

    static PreferenceDataConfig cfg(Path data, PreferenceFormat f, Encoder.PromptStyle style, int maxLen) {
        return new PreferenceDataConfig(data, f, style, maxLen, null, 0, null, false, 0);
    }

    static PreferenceDataConfig alpaca(Path data, int maxLen) {
        return cfg(data, null, Encoder.PromptStyle.ALPACA, maxLen);
    }

    static PreferenceDataConfig template(Path data, int maxLen) {
        return cfg(data, null, Encoder.PromptStyle.TEMPLATE, maxLen);
    }

    static long[] cat(long[]... parts) {
        return Arrays.stream(parts).flatMapToLong(Arrays::stream).toArray();
    }

    static Tokenizer qwen() {
        return Tokenizer.load(Golden.asset("tokenizer-qwen3-hf"));
    }

    static final String QWEN_USER = "<|im_start|>user\n", QWEN_ASSISTANT = "<|im_start|>assistant\n", QWEN_END = "<|im_end|>\n", NO_THINK = "<think>\n\n</think>\n\n";

    // ---- formats, exact ids ----

    @Test
    void standardStringsUseTheAlpacaLayoutAndEndWithEos() throws Exception {
        Path f = write("s.jsonl", "{\"prompt\": \"Name a color.\", \"chosen\": \"Blue is a color.\", \"rejected\": \"No.\"}\n");
        var d = PreferenceData.load(alpaca(f, 256), stories, EOS);
        assertThat(d.format).isEqualTo(PreferenceFormat.STANDARD);
        assertThat(d.unpaired).isFalse();
        assertThat(d.kTrain).isEmpty();
        PreferencePair p = d.train.getFirst();
        String prompt = "### Instruction:\nName a color.\n\n### Response:\n";
        assertThat(p.prompt()).containsExactly(stories.encode(prompt, true));
        assertThat(p.chosen()).as("an Alpaca answer is tokenized on its own, as SFT does").containsExactly(cat(stories.encode("Blue is a color.", false), new long[]{EOS}));
        assertThat(p.rejected()).as("an Alpaca answer is tokenized on its own, as SFT does").containsExactly(cat(stories.encode("No.", false), new long[]{EOS}));
        assertThat(stories.decode(p.chosen(), false)).isEqualTo("Blue is a color.</s>");
    }

    @Test
    void conversationalUsesTheChatTemplateSplitAfterTheGenerationPrompt() throws Exception {
        try (Tokenizer qwen = qwen()) {
            String sys = "{\"role\": \"system\", \"content\": \"Be brief.\"}", user = "{\"role\": \"user\", \"content\": \"What color is the sky?\"}";
            String blue = "{\"role\": \"assistant\", \"content\": \"It is blue.\"}", green = "{\"role\": \"assistant\", \"content\": \"It is green.\"}";
            Path explicit = write("c.jsonl", "{\"prompt\": [" + sys + ", " + user + "], \"chosen\": [" + blue + "], \"rejected\": [" + green + "]}\n");
            Path implicit = write("i.jsonl", "{\"chosen\": [" + sys + ", " + user + ", " + blue + "], \"rejected\": [" + sys + ", " + user + ", " + green + "]}\n");
            for (Path f : List.of(explicit, implicit)) {
                var d = PreferenceData.load(template(f, 512), qwen, qwen.specialId("eos_token"));
                assertThat(d.format).isEqualTo(PreferenceFormat.CONVERSATIONAL);
                PreferencePair p = d.train.getFirst();
                assertThat(p.prompt()).as(f.toString()).containsExactly(qwen.encode("<|im_start|>system\nBe brief." + QWEN_END + QWEN_USER + "What color is the sky?" + QWEN_END + QWEN_ASSISTANT, false));
                assertThat(p.chosen()).containsExactly(qwen.encode(NO_THINK + "It is blue." + QWEN_END, false));
                assertThat(p.rejected()).containsExactly(qwen.encode(NO_THINK + "It is green." + QWEN_END, false));
            }
        }
    }

    @Test
    void hhTranscriptsSplitAtTheLastAssistantMarker() throws Exception {
        String prompt = "\\n\\nHuman: Hi\\n\\nAssistant: Hello!\\n\\nHuman: What color is the sky?\\n\\nAssistant:";
        Path f = write("hh.jsonl", "{\"chosen\": \"" + prompt + " Blue.\", \"rejected\": \"" + prompt + " Green.\"}\n");
        String p = prompt.replace("\\n", "\n");
        var raw = PreferenceData.load(alpaca(f, 256), stories, EOS); // the alpaca/raw style keeps the transcript's own text
        assertThat(raw.format).isEqualTo(PreferenceFormat.HH_RLHF);
        PreferencePair r = raw.train.getFirst();
        assertThat(r.prompt()).containsExactly(stories.encode(p, true));
        assertThat(cat(r.prompt(), r.chosen())).containsExactly(cat(stories.encode(p + " Blue.", true), new long[]{EOS}));
        assertThat(cat(r.prompt(), r.rejected())).containsExactly(cat(stories.encode(p + " Green.", true), new long[]{EOS}));
        try (Tokenizer qwen = qwen()) { // the template style renders the parsed turns
            PreferencePair t = PreferenceData.load(template(f, 256), qwen, qwen.specialId("eos_token")).train.getFirst();
            assertThat(t.prompt()).containsExactly(qwen.encode(QWEN_USER + "Hi" + QWEN_END + QWEN_ASSISTANT + "Hello!" + QWEN_END + QWEN_USER + "What color is the sky?" + QWEN_END + QWEN_ASSISTANT, false));
            assertThat(t.chosen()).containsExactly(qwen.encode(NO_THINK + "Blue." + QWEN_END, false));
        }
    }

    @Test
    void shareGptAndAlpacaInstructionRows() throws Exception {
        Path s = write("s.json", "[{\"conversations\": [{\"from\": \"system\", \"value\": \"Be kind.\"}, {\"from\": \"human\", \"value\": \"Hi\"}],"
                + " \"chosen\": {\"from\": \"gpt\", \"value\": \"Hello there\"}, \"rejected\": {\"from\": \"gpt\", \"value\": \"Go away\"}}]");
        var ds = PreferenceData.load(alpaca(s, 256), stories, EOS);
        assertThat(ds.format).isEqualTo(PreferenceFormat.SHAREGPT);
        String layout = "Be kind.\n\n### Instruction:\nHi\n\n### Response:\n";
        assertThat(ds.train.getFirst().prompt()).containsExactly(stories.encode(layout, true));
        assertThat(ds.train.getFirst().rejected()).as("an Alpaca answer is tokenized on its own, as SFT does").containsExactly(cat(stories.encode("Go away", false), new long[]{EOS}));

        Path multi = write("mt.json", "[{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello\"}, {\"from\": \"human\", \"value\": \"More?\"}],"
                + " \"chosen\": {\"from\": \"gpt\", \"value\": \"Yes\"}, \"rejected\": {\"from\": \"gpt\", \"value\": \"No\"}}]");
        long[] mp = PreferenceData.load(alpaca(multi, 256), stories, EOS).train.getFirst().prompt();
        assertThat(mp).as("earlier answers end with EOS, as Encoder lays out a conversation")
                .containsExactly(stories.encode("### Instruction:\nHi\n\n### Response:\nHello</s>\n\n### Instruction:\nMore?\n\n### Response:\n", true)).contains(EOS);

        Path a = write("a.json", "[{\"instruction\": \"Fix the spelling.\", \"input\": \"freind\", \"output\": \"friend\", \"chosen\": \"friend\", \"rejected\": \"friend, obviously\"}]");
        var da = PreferenceData.load(alpaca(a, 256), stories, EOS);
        assertThat(da.format).isEqualTo(PreferenceFormat.ALPACA);
        String al = "### Instruction:\nFix the spelling.\n\n### Input:\nfreind\n\n### Response:\n";
        assertThat(da.train.getFirst().prompt()).containsExactly(stories.encode(al, true));
        assertThat(da.train.getFirst().chosen()).as("an Alpaca answer is tokenized on its own, as SFT does").containsExactly(cat(stories.encode("friend", false), new long[]{EOS}));
        try (Tokenizer qwen = qwen()) {
            PreferencePair t = PreferenceData.load(template(a, 256), qwen, qwen.specialId("eos_token")).train.getFirst();
            assertThat(t.prompt()).containsExactly(qwen.encode(QWEN_USER + "Fix the spelling.\n\nfreind" + QWEN_END + QWEN_ASSISTANT, false));
            assertThat(t.chosen()).containsExactly(qwen.encode(NO_THINK + "friend" + QWEN_END, false));
        }
    }

    @Test
    void ktoRowsAreUnpairedWithTheirLabel() throws Exception {
        Path f = write("k.jsonl", "{\"prompt\": \"Say hi.\", \"completion\": \"Hi!\", \"label\": true}\n{\"prompt\": \"Say hi.\", \"completion\": \"No.\", \"label\": false}\n");
        var d = PreferenceData.load(alpaca(f, 256), stories, EOS);
        assertThat(d.format).isEqualTo(PreferenceFormat.KTO);
        assertThat(d.unpaired).isTrue();
        assertThat(d.train).isEmpty();
        assertThat(d.kTrain).extracting(KtoExample::desirable).containsExactly(true, false);
        String prompt = "### Instruction:\nSay hi.\n\n### Response:\n";
        assertThat(d.kTrain.get(1).completion()).as("an Alpaca answer is tokenized on its own, as SFT does").containsExactly(cat(stories.encode("No.", false), new long[]{EOS}));
        assertThat(d.summary()).contains("1 desirable, 1 undesirable");
        try (Tokenizer qwen = qwen()) {
            Path m = write("km.jsonl", "{\"prompt\": [{\"role\": \"user\", \"content\": \"Say hi.\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"Hi!\"}], \"label\": true}\n");
            KtoExample e = PreferenceData.load(template(m, 256), qwen, qwen.specialId("eos_token")).kTrain.getFirst();
            assertThat(e.prompt()).containsExactly(qwen.encode(QWEN_USER + "Say hi." + QWEN_END + QWEN_ASSISTANT, false));
            assertThat(e.completion()).containsExactly(qwen.encode(NO_THINK + "Hi!" + QWEN_END, false));
            assertThat(e.desirable()).isTrue();
        }
    }

    @Test
    void preTokenizedRowsNeedNoTokenizerAndGetNoEos() throws Exception {
        Path f = write("t.jsonl", "{\"prompt_ids\": [1, 5, 6], \"chosen_ids\": [7, 8], \"rejected_ids\": [9]}\n");
        var d = PreferenceData.load(alpaca(f, 16), null, -1);
        assertThat(d.format).isEqualTo(PreferenceFormat.TOKENIZED);
        PreferencePair p = d.train.getFirst();
        assertThat(p.prompt()).containsExactly(1, 5, 6);
        assertThat(p.chosen()).containsExactly(7, 8);
        assertThat(p.rejected()).containsExactly(9);
        Path k = write("kt.jsonl", "{\"prompt_ids\": [1, 5], \"completion_ids\": [7], \"label\": false}\n");
        var dk = PreferenceData.load(alpaca(k, 16), null, -1);
        assertThat(dk.format).isEqualTo(PreferenceFormat.KTO_TOKENIZED);
        assertThat(dk.kTrain.getFirst().completion()).containsExactly(7);
        assertThat(dk.kTrain.getFirst().desirable()).isFalse();
        Path s = write("s.jsonl", "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(s, 16), null, -1)).hasMessageContaining("standard needs a tokenizer");
    }

    // ---- the real asset files ----

    @Test
    void llamaFactoryDpoDemoLoadsWithTheChatTemplate() {
        Path f = Golden.asset("llamafactory-data/dpo_en_demo.json");
        try (Tokenizer qwen = qwen()) {
            var d = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.TEMPLATE, 100_000, null, 0.1, null, false, 3), qwen, qwen.specialId("eos_token"));
            assertThat(d.format).isEqualTo(PreferenceFormat.SHAREGPT);
            assertThat(d.rows).isEqualTo(300);
            assertThat(d.dropped).isZero();
            assertThat(d.warnings).isEmpty();
            assertThat(d.val).hasSize(30);
            assertThat(d.train).hasSize(270);
            for (PreferencePair p : d.train) {
                assertThat(qwen.decode(p.prompt(), false)).endsWith(QWEN_ASSISTANT);
                assertThat(qwen.decode(p.chosen(), false)).startsWith(NO_THINK).endsWith(QWEN_END);
            }
            var first = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.TEMPLATE, 100_000, null, 0, null, false, 0), qwen, 0).train.getFirst();
            String q = "Hi! I'd like to create a new language game simulating the first person perspective of a character named Angela.";
            assertThat(first.prompt()).containsExactly(qwen.encode(QWEN_USER + q + QWEN_END + QWEN_ASSISTANT, false));
            var max = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.TEMPLATE, 256, null, 0, null, false, 0), qwen, 0);
            assertThat(max.dropped + max.train.size()).isEqualTo(300);
            assertThat(max.dropped).isPositive();
            assertThat(max.truncated).isPositive();
            for (PreferencePair p : max.train) assertThat(p.prompt().length + Math.max(p.chosen().length, p.rejected().length)).isLessThanOrEqualTo(256);
        }
    }

    @Test
    void rasbtPreferenceFileLoadsWithTheAlpacaLayout() {
        Path f = Golden.asset("rasbt-instruction/instruction-data-with-preference.json");
        var d = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 2048, null, 0.1, null, false, 0), stories, EOS);
        assertThat(d.format).isEqualTo(PreferenceFormat.ALPACA);
        assertThat(d.rows).isEqualTo(1100);
        assertThat(d.warnings).as("the prompt's tokens are a prefix of every prompt + completion").isEmpty();
        assertThat(d.train.size() + d.val.size()).isEqualTo(1100);
        assertThat(d.val).hasSize(110);
        var first = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 2048, null, 0, null, false, 0), stories, EOS).train.getFirst();
        String prompt = "### Instruction:\nEvaluate the following phrase by transforming it into the spelling given.\n\n### Input:\nfreind --> friend\n\n### Response:\n";
        assertThat(first.prompt()).containsExactly(stories.encode(prompt, true));
        assertThat(stories.decode(first.rejected(), false)).isEqualTo("The spelling of the given phrase \"freind\" is flat out wrong, get it together, the correct spelling is \"friend\".</s>");
    }

    // ---- detection, --format, lengths, split ----

    @Test
    void detectionAndFormatOverride() throws Exception {
        assertThat(PreferenceFormat.parse("hh-rlhf")).isEqualTo(PreferenceFormat.HH_RLHF);
        assertThat(PreferenceFormat.parse("Kto_Tokenized")).isEqualTo(PreferenceFormat.KTO_TOKENIZED);
        assertThatThrownBy(() -> PreferenceFormat.parse("pairs")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown preference format 'pairs'").hasMessageContaining("standard, conversational, sharegpt, alpaca, hh_rlhf, kto, tokenized, kto_tokenized");
        // a stray prompt column makes the rows look standard; --format hh_rlhf reads the transcripts instead
        Path f = write("x.jsonl", "{\"prompt\": \"ignored\", \"chosen\": \"\\n\\nHuman: Hi\\n\\nAssistant: Yes\", \"rejected\": \"\\n\\nHuman: Hi\\n\\nAssistant: No\"}\n");
        assertThat(PreferenceData.load(alpaca(f, 64), stories, EOS).format).isEqualTo(PreferenceFormat.STANDARD);
        var hh = PreferenceData.load(cfg(f, PreferenceFormat.HH_RLHF, Encoder.PromptStyle.ALPACA, 64), stories, EOS);
        assertThat(hh.train.getFirst().prompt()).containsExactly(stories.encode("\n\nHuman: Hi\n\nAssistant:", true));
        Path unknown = write("u.jsonl", "{\"question\": \"a\", \"answer\": \"b\"}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(unknown, 64), stories, EOS)).isInstanceOf(DataException.class)
                .hasMessageContaining("u.jsonl line 1").hasMessageContaining("cannot tell the preference format").hasMessageContaining("question");
    }

    @Test
    void completionsAreCutToMaxLengthAndPromptsThatFillItAreDropped() throws Exception {
        Path f = write("t.jsonl", """
                {"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5, 6, 7, 8], "rejected_ids": [9]}
                {"prompt_ids": [1, 2, 3, 4, 5, 6], "chosen_ids": [7], "rejected_ids": [8]}
                {"prompt_ids": [1, 2, 3, 4, 5, 6, 7], "chosen_ids": [8], "rejected_ids": [9]}
                {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}
                """);
        var d = PreferenceData.load(alpaca(f, 6), null, -1);
        assertThat(d.dropped).isEqualTo(2);
        assertThat(d.truncated).isEqualTo(1);
        assertThat(d.train).hasSize(2);
        assertThat(d.train.getFirst().chosen()).containsExactly(4, 5, 6);
        assertThat(d.train.getFirst().rejected()).containsExactly(9);
        assertThat(d.summary()).contains("2 dropped").contains("1 truncated");
        // max_prompt_len keeps the prompt's end, then max length applies
        var p = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 6, 2, 0, null, false, 0), null, -1);
        assertThat(p.dropped).isZero();
        assertThat(p.train.get(2).prompt()).containsExactly(6, 7);
        assertThat(p.train.getFirst().chosen()).containsExactly(4, 5, 6, 7);
        // a tokenized row: the same rule, and the EOS is cut with the rest
        Path s = write("s.jsonl", "{\"prompt\": \"Hi\", \"chosen\": \"" + "a long answer ".repeat(20) + "\", \"rejected\": \"No.\"}\n");
        int max = stories.encode("### Instruction:\nHi\n\n### Response:\n", true).length + 6;
        var ds = PreferenceData.load(alpaca(s, max), stories, EOS);
        PreferencePair pair = ds.train.getFirst();
        assertThat(ds.truncated).isEqualTo(1);
        assertThat(pair.prompt().length + pair.chosen().length).isEqualTo(max);
        assertThat(pair.rejected()[pair.rejected().length - 1]).isEqualTo(EOS);
        assertThatThrownBy(() -> new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 6, 6, 0, null, false, 0)).hasMessageContaining("max_prompt_len");
    }

    @Test
    void splitIsDeterministicAndAValFileMustMatch() throws Exception {
        var sb = new StringBuilder();
        for (int i = 0; i < 8; i++) sb.append("{\"prompt_ids\": [1, ").append(i + 10).append("], \"chosen_ids\": [4], \"rejected_ids\": [5]}\n");
        Path f = write("t.jsonl", sb.toString());
        var c = new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 16, null, 0.25, null, false, 7);
        var a = PreferenceData.load(c, null, -1);
        var b = PreferenceData.load(c, null, -1);
        assertThat(a.val).hasSize(2);
        assertThat(a.train).hasSize(6);
        assertThat(a.val.stream().map(p -> p.prompt()[1]).toList()).isEqualTo(b.val.stream().map(p -> p.prompt()[1]).toList());
        Path kto = write("k.jsonl", "{\"prompt_ids\": [1], \"completion_ids\": [2], \"label\": true}\n");
        assertThatThrownBy(() -> PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 16, null, 0, kto, false, 0), null, -1))
                .hasMessageContaining("k.jsonl").hasMessageContaining("unpaired (KTO)");
        var withVal = PreferenceData.load(new PreferenceDataConfig(f, null, Encoder.PromptStyle.ALPACA, 16, null, 0, f, false, 0), null, -1);
        assertThat(withVal.train).hasSize(8);
        assertThat(withVal.val).hasSize(8);
    }

    // ---- bad rows: file, line and field named; skip-bad-rows counts them ----

    @Test
    void badRowsNameFileLineFieldAndWhatWasFound() throws Exception {
        Path missing = write("m.jsonl", "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"a\", \"chosen\": \"b\"}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(missing, 64), stories, EOS)).isInstanceOf(DataException.class)
                .hasMessageContaining("m.jsonl line 2").hasMessageContaining("missing field 'rejected'");
        Path wrongType = write("w.json", "[{\"prompt\": \"a\", \"chosen\": 5, \"rejected\": \"c\"}]");
        assertThatThrownBy(() -> PreferenceData.load(cfg(wrongType, PreferenceFormat.STANDARD, Encoder.PromptStyle.ALPACA, 64), stories, EOS))
                .hasMessageContaining("w.json row 0").hasMessageContaining("field 'chosen': expected a string, found number 5");
        Path empty = write("e.jsonl", "{\"prompt\": \"a\", \"chosen\": \"  \", \"rejected\": \"c\"}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(empty, 64), stories, EOS)).hasMessageContaining("e.jsonl line 1").hasMessageContaining("field 'chosen' is empty");
        Path gpt = write("g.json", "[{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}], \"chosen\": {\"from\": \"human\", \"value\": \"x\"}, \"rejected\": {\"from\": \"gpt\", \"value\": \"y\"}}]");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(gpt, 64), stories, EOS)).hasMessageContaining("g.json row 0").hasMessageContaining("field 'chosen.from': expected 'gpt', found 'human'");
        Path label = write("l.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\", \"label\": \"yes\"}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(label, 64), stories, EOS)).hasMessageContaining("l.jsonl line 1").hasMessageContaining("field 'label': expected true or false, found string \"yes\"");
        Path ids = write("i.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [2, -1], \"rejected_ids\": []}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(ids, 64), null, -1)).hasMessageContaining("i.jsonl line 1").hasMessageContaining("field 'chosen_ids[1]': expected a token id");
        Path hh = write("h.jsonl", "{\"chosen\": \"\\n\\nHuman: a\\n\\nAssistant: b\", \"rejected\": \"\\n\\nHuman: other\\n\\nAssistant: c\"}\n");
        assertThatThrownBy(() -> PreferenceData.load(alpaca(hh, 64), stories, EOS)).hasMessageContaining("h.jsonl line 1").hasMessageContaining("field 'rejected': expected the same conversation");
    }

    @Test
    void aTemplateThatDoesNotRenderThePromptAsAPrefixNamesTheRow() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("tok"));
        Files.copy(Golden.asset("tokenizer-smollm2-135m/tokenizer.json"), dir.resolve("tokenizer.json"));
        Files.writeString(dir.resolve("tokenizer_config.json"), new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(Map.of("eos_token", "<|im_end|>",
                "chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<gen>{% endif %}")));
        Path f = write("c.jsonl", "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"Yo\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"No\"}]}\n");
        try (Tokenizer t = Tokenizer.load(dir)) {
            assertThatThrownBy(() -> PreferenceData.load(template(f, 64), t, t.specialId("eos_token"))).isInstanceOf(DataException.class)
                    .hasMessageContaining("c.jsonl line 1").hasMessageContaining("field 'chosen'").hasMessageContaining("does not start with its rendering of the prompt");
        }
    }

    @Test
    void skipBadRowsCountsThemAsWarnings() throws Exception {
        Path f = write("mixed.jsonl", """
                {"prompt": "a", "chosen": "b", "rejected": "c"}
                not json
                {"prompt": "a", "chosen": "", "rejected": "c"}
                {"prompt": "a", "rejected": "c"}
                {"prompt": "d", "chosen": "e", "rejected": "f"}
                """);
        var d = PreferenceData.load(new PreferenceDataConfig(f, PreferenceFormat.STANDARD, Encoder.PromptStyle.ALPACA, 64, null, 0, null, true, 0), stories, EOS);
        assertThat(d.train).hasSize(2);
        assertThat(d.warnings).hasSize(3);
        assertThat(d.warnings.get(0)).contains("mixed.jsonl line 2");
        assertThat(d.warnings.get(1)).contains("mixed.jsonl line 3").contains("field 'chosen' is empty");
        assertThat(d.warnings.get(2)).contains("mixed.jsonl line 4").contains("missing field 'chosen'");
        assertThat(d.summary()).contains("3 skipped");
    }
}
