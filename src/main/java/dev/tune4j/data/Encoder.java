package dev.tune4j.data;

import dev.tune4j.hf.UserError;
import dev.tune4j.text.TemplateException;
import dev.tune4j.text.Tokenizer;

import java.util.*;

/**
 * Turns conversations into token ids and labels, with loss only on what the model should learn to write (as TRL does):
 * every assistant turn and its end-of-turn token; prompts, system text and template markup get −100. Raw text is
 * learned whole. Completions end with EOS.
 */
public final class Encoder {
    /** How a conversation becomes text: the model's own chat template, or the Alpaca layout. */
    public enum PromptStyle {
        TEMPLATE, ALPACA;

        /** --prompt-style: template or alpaca. */
        public static PromptStyle parse(String s) {
            for (var v : values()) if (v.name().equalsIgnoreCase(s.strip())) return v;
            throw new UserError("prompt-style: expected template or alpaca, found '" + s + "'");
        }
    }

    static final String ALPACA_INSTRUCTION = "### Instruction:\n", ALPACA_INPUT = "\n\n### Input:\n", ALPACA_RESPONSE = "\n\n### Response:\n";

    private final Tokenizer tok;
    private final PromptStyle style;
    private final long eos;
    private final String eosText;

    public Encoder(Tokenizer tok, PromptStyle style, long eosId) {
        if (style == PromptStyle.TEMPLATE && tok.chatTemplate().isEmpty())
            throw new UserError("the tokenizer has no chat_template: use --prompt-style alpaca");
        this.tok = tok;
        this.style = style;
        this.eos = eosId;
        Object e = tok.specialTokens().get("eos_token");
        this.eosText = e == null ? null : e.toString();
    }

    public Example encode(Row row, Format format) {
        List<Format.Message> msgs = format.toMessages(row);
        if (format == Format.TEXT) return text(msgs.getFirst().content());
        if (style == PromptStyle.ALPACA) return alpaca(row, format, msgs);
        return template(row, msgs);
    }

    /** The chat template's text; a template that raises on the row (raise_exception, an undefined value) names it. */
    static String render(Tokenizer tok, Row row, List<Map<String, Object>> msgs, boolean generationPrompt) {
        try {
            return tok.applyChatTemplate(msgs, generationPrompt);
        } catch (TemplateException e) {
            throw row.error("the chat template refused the conversation: " + e.getMessage());
        }
    }

    /** What generation-based scoring needs: the prompt as the model sees it, and the answer the record expects. */
    public record Prompt(long[] ids, String expected) {}

    /**
     * The record's conversation up to its last assistant turn, rendered as during training (Alpaca layout or the chat
     * template with the generation prompt), and that turn's text as the expected answer. Raw text has no answer.
     */
    public Prompt prompt(Row row, Format format) {
        List<Format.Message> msgs = format.toMessages(row);
        if (format == Format.TEXT) throw row.error("raw text has no prompt/answer to score");
        int last = msgs.size() - 1;
        while (last >= 0 && !msgs.get(last).role().equals("assistant")) last--;
        String expected = msgs.get(last).content();
        var context = msgs.subList(0, last);
        if (style == PromptStyle.TEMPLATE) {
            String text = render(tok, row, context.stream().map(Format.Message::asMap).toList(), true);
            return new Prompt(tok.encode(text, false), expected);
        }
        Example e = alpaca(row, format, msgs.subList(0, last + 1));
        int promptLen = 0; // the prompt is everything before the last answer's first supervised token
        for (int i = e.length() - 1; i >= 0; i--) if (e.labels()[i] != Example.IGNORE && (i == 0 || e.labels()[i - 1] == Example.IGNORE)) {
            promptLen = i;
            break;
        }
        return new Prompt(java.util.Arrays.copyOf(e.ids(), promptLen), expected);
    }

    private Example text(String text) {
        long[] body = tok.encode(text, true);
        long[] ids = Arrays.copyOf(body, body.length + 1);
        ids[body.length] = eos;
        return new Example(ids, ids.clone());
    }

    /** "### Instruction:\n…[\n\n### Input:\n…]\n\n### Response:\n" then the answer and EOS; one block per user turn. */
    private Example alpaca(Row row, Format format, List<Format.Message> msgs) {
        var ids = new LongList();
        var labels = new LongList();
        boolean first = true;
        String pending = msgs.stream().filter(m -> m.role().equals("system")).map(m -> m.content() + "\n\n").findFirst().orElse("");
        for (Format.Message m : msgs) {
            if (m.role().equals("user")) {
                String prompt;
                if (format == Format.ALPACA) {
                    String input = row.value().path("input").asText("");
                    prompt = ALPACA_INSTRUCTION + row.value().path("instruction").asText() + (input.isEmpty() ? "" : ALPACA_INPUT + input) + ALPACA_RESPONSE;
                } else prompt = ALPACA_INSTRUCTION + m.content() + ALPACA_RESPONSE;
                long[] p = tok.encode((first ? pending : "\n\n") + prompt, first);
                ids.addAll(p);
                labels.addIgnored(p.length);
                first = false;
            } else if (m.role().equals("assistant")) {
                long[] a = tok.encode(m.content(), false);
                ids.addAll(a);
                labels.addAll(a);
                ids.add(eos);
                labels.add(eos);
            }
        }
        return new Example(ids.toArray(), labels.toArray());
    }

    /**
     * The conversation rendered by the chat template, tokenized once with character offsets; a token is supervised when
     * it starts inside an assistant turn's text or the end-of-turn token right after it.
     */
    private Example template(Row row, List<Format.Message> msgs) {
        var maps = msgs.stream().map(Format.Message::asMap).toList();
        String full = render(tok, row, maps, false);
        var spans = new ArrayList<int[]>();
        int searchFrom = 0;
        for (int i = 0; i < msgs.size(); i++) {
            if (!msgs.get(i).role().equals("assistant")) continue;
            String prefix = render(tok, row, maps.subList(0, i), true);
            int from = full.startsWith(prefix) ? Math.max(prefix.length(), searchFrom) : searchFrom;
            String content = msgs.get(i).content().strip();
            int at = full.indexOf(content, from);
            if (at < 0) throw row.error("the chat template does not reproduce assistant turn " + i + " verbatim, so its tokens cannot be located");
            int start = full.startsWith(prefix) && prefix.length() >= searchFrom ? prefix.length() : at; // include template text the model writes (e.g. <think></think>)
            int end = at + content.length();
            if (eosText != null && full.startsWith(eosText, end)) end += eosText.length();
            spans.add(new int[]{start, end});
            searchFrom = end;
        }
        var enc = tok.encodeWithOffsets(full, false);
        long[] labels = new long[enc.ids().length];
        for (int j = 0; j < labels.length; j++) {
            labels[j] = Example.IGNORE;
            for (int[] s : spans) if (enc.starts()[j] >= s[0] && enc.starts()[j] < s[1]) labels[j] = enc.ids()[j];
        }
        return new Example(enc.ids(), labels);
    }

    /** A growable long array (examples are built token by token). */
    static final class LongList {
        long[] a = new long[64];
        int n;

        void add(long v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        void addAll(long[] v) {
            for (long x : v) add(x);
        }

        void addIgnored(int count) {
            for (int i = 0; i < count; i++) add(Example.IGNORE);
        }

        long[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
