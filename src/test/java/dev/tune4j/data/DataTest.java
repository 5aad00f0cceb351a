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
import java.util.ArrayList;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.*;

/** Formats, completion-only labels, truncation, splits, mixing, packing, and named errors for malformed rows. */
class DataTest {
    @TempDir
    Path tmp;

    static Tokenizer stories;

    @BeforeAll
    static void load() throws Exception {
        stories = Tokenizer.load(EmbeddedModel.stories260k());
    }

    @AfterAll
    static void close() {
        stories.close();
    }

    DataConfig cfg(Path data, int maxLen) {
        return new DataConfig(data, null, Encoder.PromptStyle.ALPACA, maxLen, 0.0, null, null, 0, false, 0);
    }

    Path write(String name, String content) throws Exception {
        Path p = tmp.resolve(name);
        Files.writeString(p, content);
        return p;
    }

    static String supervisedText(Tokenizer t, Example e) {
        var ids = new ArrayList<Long>();
        for (int i = 0; i < e.length(); i++) if (e.labels()[i] != Example.IGNORE) ids.add(e.ids()[i]);
        return t.decode(ids.stream().mapToLong(Long::longValue).toArray(), false);
    }

    @Test
    void alpacaLearnsOnlyTheResponseAndEos() throws Exception {
        Path f = write("a.json", "[{\"instruction\": \"Name a color.\", \"input\": \"\", \"output\": \"Blue is a color.\"},"
                + "{\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\"}]");
        var d = Dataset.load(cfg(f, 256), stories, 2);
        assertThat(d.format).isEqualTo(Format.ALPACA);
        Example e = d.train.getFirst();
        assertThat(e.ids()[0]).as("BOS").isEqualTo(1);
        assertThat(e.ids()[e.length() - 1]).as("EOS appended").isEqualTo(2);
        assertThat(e.labels()[e.length() - 1]).as("EOS is learned").isEqualTo(2);
        assertThat(supervisedText(stories, e)).isEqualTo("Blue is a color.</s>");
        String prompt = stories.decode(Arrays.copyOf(e.ids(), e.length() - (int) Arrays.stream(e.labels()).filter(l -> l != Example.IGNORE).count()), false);
        assertThat(prompt).contains("### Instruction:\nName a color.\n\n### Response:\n").doesNotContain("### Input");
        assertThat(stories.decode(d.train.get(1).ids(), false)).contains("### Input:\n2 and 3");
    }

    @Test
    void rawTextLearnsEverything() throws Exception {
        Path f = write("t.txt", "Once upon a time.\n\nThe end.\n");
        var d = Dataset.load(cfg(f, 256), stories, 2);
        assertThat(d.format).isEqualTo(Format.TEXT);
        assertThat(d.train).hasSize(2);
        assertThat(d.train.getFirst().labels()).containsExactly(d.train.getFirst().ids());
    }

    @Test
    void multiTurnChatTemplateLearnsEveryAssistantTurnAndNothingElse() throws Exception {
        try (Tokenizer qwen = Tokenizer.load(Golden.asset("tokenizer-qwen3-hf"))) {
            Path f = write("c.jsonl", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Translate 'cat' to French.\"},"
                    + " {\"role\": \"assistant\", \"content\": \"chat\"}, {\"role\": \"user\", \"content\": \"And 'dog'?\"}, {\"role\": \"assistant\", \"content\": \"chien\"}]}\n");
            var c = new DataConfig(f, null, Encoder.PromptStyle.TEMPLATE, 512, 0, null, null, 0, false, 0);
            Example e = Dataset.load(c, qwen, qwen.specialId("eos_token")).train.getFirst();
            assertThat(supervisedText(qwen, e)).isEqualTo("chat<|im_end|><think>\n\n</think>\n\nchien<|im_end|>");
            String all = qwen.decode(e.ids(), false);
            assertThat(all).startsWith("<|im_start|>system\nBe brief.<|im_end|>");
        }
    }

    @Test
    void shareGptAndPromptCompletion() throws Exception {
        Path s = write("s.json", "[{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello there\"}]}]");
        var ds = Dataset.load(cfg(s, 256), stories, 2);
        assertThat(ds.format).isEqualTo(Format.SHAREGPT);
        assertThat(supervisedText(stories, ds.train.getFirst())).isEqualTo("Hello there</s>");
        Path p = write("p.jsonl", "{\"prompt\": \"Q: 1+1?\", \"completion\": \"2\"}\n");
        var dp = Dataset.load(cfg(p, 256), stories, 2);
        assertThat(dp.format).isEqualTo(Format.PROMPT_COMPLETION);
        assertThat(supervisedText(stories, dp.train.getFirst())).isEqualTo("2</s>");
    }

    @Test
    void truncationIsCountedAndSplitIsDeterministic() throws Exception {
        var sb = new StringBuilder("[");
        for (int i = 0; i < 20; i++) sb.append(i == 0 ? "" : ",").append("{\"instruction\": \"Say ").append(i).append("\", \"output\": \"").append("a long answer ".repeat(i % 3 == 0 ? 30 : 1)).append("\"}");
        Path f = write("many.json", sb.append("]").toString());
        var c = new DataConfig(f, null, Encoder.PromptStyle.ALPACA, 64, 0.25, null, null, 0, false, 7);
        var d1 = Dataset.load(c, stories, 2);
        var d2 = Dataset.load(c, stories, 2);
        assertThat(d1.val).hasSize(5);
        assertThat(d1.train).hasSize(15);
        assertThat(d1.truncated).isEqualTo(7);
        for (Example e : d1.train) assertThat(e.length()).isLessThanOrEqualTo(64);
        for (int i = 0; i < d1.val.size(); i++) assertThat(d1.val.get(i).ids()).containsExactly(d2.val.get(i).ids());
        var other = Dataset.load(new DataConfig(f, null, Encoder.PromptStyle.ALPACA, 64, 0.25, null, null, 0, false, 8), stories, 2);
        assertThat(other.val.stream().map(e -> Arrays.toString(e.ids())).toList()).isNotEqualTo(d1.val.stream().map(e -> Arrays.toString(e.ids())).toList());
    }

    @Test
    void mixFileAddsGeneralText() throws Exception {
        Path f = write("a.json", "[{\"instruction\": \"x\", \"output\": \"y\"}, {\"instruction\": \"x2\", \"output\": \"y2\"}, {\"instruction\": \"x3\", \"output\": \"y3\"}]");
        Path mix = write("m.txt", "General story one.\n\nGeneral story two.\n");
        var d = Dataset.load(new DataConfig(f, null, Encoder.PromptStyle.ALPACA, 64, 0, null, mix, 0.5, false, 0), stories, 2);
        assertThat(d.mixed).isEqualTo(3);
        assertThat(d.train).hasSize(6);
    }

    @Test
    void packingKeepsExamplesApartAndNeverPredictsAcrossThem() {
        var a = new Example(new long[]{1, 5, 6, 2}, new long[]{-100, -100, 6, 2});
        var b = new Example(new long[]{1, 7, 2}, new long[]{-100, 7, 2});
        var c = new Example(new long[]{1, 8, 9, 10, 2}, new long[]{-100, 8, 9, 10, 2});
        var rows = Packing.pack(java.util.List.of(a, b, c), 8, 0);
        assertThat(rows).hasSize(2);
        var r = rows.getFirst();
        assertThat(r.ids()).containsExactly(1, 5, 6, 2, 1, 7, 2, 0);
        assertThat(r.positions()).containsExactly(0, 1, 2, 3, 0, 1, 2, 0);
        assertThat(r.segments()).containsExactly(1, 1, 1, 1, 2, 2, 2, 0);
        assertThat(r.labels()).containsExactly(-100, -100, 6, 2, -100, 7, 2, -100);
    }

    // ---- malformed rows: file, line and field named; --skip-bad-rows counts them ----

    @Test
    void malformedRowsNameFileLineAndField() throws Exception {
        Path badJson = write("bad.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \n");
        assertThatThrownBy(() -> Dataset.load(cfg(badJson, 64), stories, 2)).isInstanceOf(DataException.class)
                .hasMessageContaining("bad.jsonl line 2").hasMessageContaining("not valid JSON");
        Path missing = write("m.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\"}\n");
        assertThatThrownBy(() -> Dataset.load(new DataConfig(missing, Format.ALPACA, Encoder.PromptStyle.ALPACA, 64, 0, null, null, 0, false, 0), stories, 2))
                .hasMessageContaining("m.jsonl line 2").hasMessageContaining("missing field 'output'");
        Path empty = write("e.json", "[{\"instruction\": \"a\", \"output\": \"  \"}]");
        assertThatThrownBy(() -> Dataset.load(cfg(empty, 64), stories, 2)).hasMessageContaining("e.json row 0").hasMessageContaining("field 'output' is empty");
        Path wrongType = write("w.json", "[{\"instruction\": \"a\", \"output\": 5}]");
        assertThatThrownBy(() -> Dataset.load(cfg(wrongType, 64), stories, 2)).hasMessageContaining("w.json row 0").hasMessageContaining("field 'output': expected a string, found number");
        Path badRole = write("r.json", "[{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"bot\", \"content\": \"yo\"}]}]");
        assertThatThrownBy(() -> Dataset.load(cfg(badRole, 64), stories, 2)).hasMessageContaining("field 'messages[1].role': unknown role 'bot'");
        Path unknown = write("u.json", "[{\"question\": \"a\"}]");
        assertThatThrownBy(() -> Dataset.load(cfg(unknown, 64), stories, 2)).hasMessageContaining("cannot tell the format").hasMessageContaining("question");
    }

    @Test
    void skipBadRowsCountsThem() throws Exception {
        Path f = write("mixed.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\nnot json\n{\"instruction\": \"c\"}\n{\"instruction\": \"d\", \"output\": \"e\"}\n");
        var d = Dataset.load(new DataConfig(f, Format.ALPACA, Encoder.PromptStyle.ALPACA, 64, 0, null, null, 0, true, 0), stories, 2);
        assertThat(d.train).hasSize(2);
        assertThat(d.warnings).hasSize(2);
        assertThat(d.warnings.get(0)).contains("line 2");
        assertThat(d.warnings.get(1)).contains("line 3").contains("output");
        assertThat(d.summary()).contains("2 skipped");
    }

    @Test
    void aChatTemplateThatRaisesOnARowNamesTheFileAndLineAndSkipBadRowsSkipsIt() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("tok"));
        Files.copy(Golden.asset("tokenizer-smollm2-135m/tokenizer.json"), dir.resolve("tokenizer.json"));
        String template = "{% for m in messages %}{% if 'FORBIDDEN' in m['content'] %}{{ raise_exception('forbidden word in ' + m['role'] + ' turn') }}{% endif %}"
                + "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        var cfg = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode().put("eos_token", "<|im_end|>").put("chat_template", template);
        Files.writeString(dir.resolve("tokenizer_config.json"), cfg.toString());
        String ok = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello there\"}]}\n";
        String bad = "{\"messages\": [{\"role\": \"user\", \"content\": \"say FORBIDDEN\"}, {\"role\": \"assistant\", \"content\": \"no\"}]}\n";
        Path f = write("chat.jsonl", ok + bad + ok);
        try (Tokenizer t = Tokenizer.load(dir)) {
            long eos = t.specialId("eos_token");
            assertThatThrownBy(() -> Dataset.load(new DataConfig(f, null, Encoder.PromptStyle.TEMPLATE, 128, 0, null, null, 0, false, 0), t, eos))
                    .isInstanceOf(DataException.class).hasMessageContaining("chat.jsonl line 2").hasMessageContaining("raise_exception: forbidden word in user turn");
            var d = Dataset.load(new DataConfig(f, null, Encoder.PromptStyle.TEMPLATE, 128, 0, null, null, 0, true, 0), t, eos);
            assertThat(d.train).hasSize(2);
            assertThat(d.warnings).singleElement().asString().contains("chat.jsonl line 2").contains("forbidden word");
            assertThat(d.summary()).contains("1 skipped");
        }
    }
}
