package dev.tune4j.data;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;
import dev.tune4j.data.Format.Message;

import java.util.*;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The record shapes of preference data (DPO, ORPO, SimPO: pairs; KTO: unpaired), each read into a {@link Sample}:
 * <ul>
 * <li>STANDARD {prompt, chosen, rejected} strings (TRL "standard");
 * <li>CONVERSATIONAL prompt a list of {role, content}, chosen/rejected lists of assistant messages; without a list
 *     prompt, chosen/rejected are whole conversations and the prompt is their shared leading turns (TRL extract_prompt);
 * <li>SHAREGPT (LLaMA-Factory ranking data) conversations [{from, value}] (human/gpt/system), optional system, chosen and
 *     rejected one {from, value} turn each;
 * <li>ALPACA {instruction, input?, chosen, rejected} (extra fields such as output are ignored);
 * <li>HH_RLHF chosen/rejected full "\n\nHuman: … \n\nAssistant: …" transcripts; the prompt is the shared text up to and
 *     including the last "\n\nAssistant:";
 * <li>KTO {prompt, completion, label} with strings or message lists;
 * <li>TOKENIZED {prompt_ids, chosen_ids, rejected_ids} and KTO_TOKENIZED {prompt_ids, completion_ids, label}: token ids
 *     taken as given (TRL 1.9 column names), no tokenizer needed.
 * </ul>
 */
public enum PreferenceFormat {
    STANDARD, CONVERSATIONAL, SHAREGPT, ALPACA, HH_RLHF, KTO, TOKENIZED, KTO_TOKENIZED;

    static final String HUMAN = "\n\nHuman:", ASSISTANT = "\n\nAssistant:";
    private static final Pattern HH_TURN = Pattern.compile("\n\n(Human|Assistant):");

    /** From a --format value: the constant's name in any case, '-' or '_'. */
    public static PreferenceFormat parse(String s) {
        for (PreferenceFormat f : values()) if (f.name().equalsIgnoreCase(s.strip().replace('-', '_'))) return f;
        throw new UserError("unknown preference format '" + s + "': expected one of " + names());
    }

    static String names() {
        return String.join(", ", Arrays.stream(values()).map(f -> f.name().toLowerCase()).toList());
    }

    public boolean unpaired() {
        return this == KTO || this == KTO_TOKENIZED;
    }

    public boolean pretokenized() {
        return this == TOKENIZED || this == KTO_TOKENIZED;
    }

    /** Detected from the first record's keys (and, for prompt/chosen/rejected, whether chosen is a string or a list). */
    public static PreferenceFormat detect(Row first) {
        JsonNode v = first.value();
        if (v == null || !v.isObject()) throw first.error("expected a JSON object");
        boolean pair = v.has("chosen") && v.has("rejected");
        if (v.has("prompt_ids") && v.has("chosen_ids") && v.has("rejected_ids")) return TOKENIZED;
        if (v.has("prompt_ids") && v.has("completion_ids")) return KTO_TOKENIZED;
        if (v.has("completion") && v.has("label")) return KTO;
        if (pair && v.has("conversations")) return SHAREGPT;
        if (pair && v.has("instruction")) return ALPACA;
        if (pair && v.get("chosen").isArray()) return CONVERSATIONAL;
        if (pair && v.has("prompt")) return STANDARD;
        if (pair && v.get("chosen").isTextual()) return HH_RLHF;
        var keys = new ArrayList<String>();
        v.fieldNames().forEachRemaining(keys::add);
        throw first.error("cannot tell the preference format from keys " + keys + ": expected prompt/chosen/rejected, conversations/chosen/rejected, "
                + "instruction/chosen/rejected, chosen/rejected transcripts, prompt/completion/label or prompt_ids/chosen_ids/rejected_ids (or pass --format: " + names() + ")");
    }

    /**
     * A record read into messages (for the chat template) and, where the record has its own text layout, that text (for
     * the Alpaca/raw prompt style; null means "lay the messages out as Alpaca"). KTO records have completion in
     * {@code chosen}, no rejected, and a label.
     */
    record Sample(List<Message> prompt, List<Message> chosen, List<Message> rejected, String textPrompt, String textChosen, String textRejected, Boolean label, boolean raw) {}

    Sample read(Row row) {
        JsonNode v = row.value();
        if (v == null || !v.isObject()) throw row.error("expected a JSON object");
        return switch (this) {
            case STANDARD -> {
                String p = text(row, "prompt"), c = text(row, "chosen"), r = text(row, "rejected");
                yield new Sample(user(p), assistant(c), assistant(r), alpaca(p, ""), c, r, null, false);
            }
            case ALPACA -> {
                String instruction = text(row, "instruction"), input = v.has("input") && !v.get("input").isNull() ? optionalText(row, "input") : "";
                String c = text(row, "chosen"), r = text(row, "rejected");
                yield new Sample(user(input.isEmpty() ? instruction : instruction + "\n\n" + input), assistant(c), assistant(r), alpaca(instruction, input), c, r, null, false);
            }
            case CONVERSATIONAL -> {
                List<Message> c = messages(row, "chosen"), r = messages(row, "rejected");
                if (v.path("prompt").isArray()) yield new Sample(messages(row, "prompt"), completion(row, "chosen", c), completion(row, "rejected", r), null, null, null, null, false);
                int k = 0; // implicit prompt: the turns chosen and rejected share
                while (k < c.size() && k < r.size() && c.get(k).equals(r.get(k))) k++;
                if (k == 0) throw row.error("field 'chosen': no 'prompt' list, and chosen and rejected share no leading turns to take as the prompt");
                yield new Sample(c.subList(0, k), completion(row, "chosen", c.subList(k, c.size())), completion(row, "rejected", r.subList(k, r.size())), null, null, null, null, false);
            }
            case SHAREGPT -> {
                var prompt = new ArrayList<Message>();
                if (v.has("system")) prompt.add(new Message("system", text(row, "system")));
                prompt.addAll(turns(row, "conversations", "from", "value"));
                if (!prompt.getLast().role().equals("user")) throw row.error("field 'conversations': expected the last turn from 'human', found '" + prompt.getLast().role() + "'");
                yield new Sample(prompt, List.of(turn(row, "chosen")), List.of(turn(row, "rejected")), null, null, null, null, false);
            }
            case HH_RLHF -> {
                String c = text(row, "chosen"), r = text(row, "rejected");
                int cut = c.lastIndexOf(ASSISTANT);
                if (cut < 0) throw row.error("field 'chosen': expected a '\\n\\nHuman: … \\n\\nAssistant: …' transcript, found no '\\n\\nAssistant:'");
                String prompt = c.substring(0, cut + ASSISTANT.length());
                if (!r.startsWith(prompt)) throw row.error("field 'rejected': expected the same conversation as 'chosen' up to its last '\\n\\nAssistant:'");
                String rc = r.substring(prompt.length());
                if (rc.contains(HUMAN) || rc.contains(ASSISTANT)) throw row.error("field 'rejected': continues past the answer that 'chosen' gives (more turns after the shared prompt)");
                String cc = c.substring(prompt.length());
                if (cc.isBlank()) throw row.error("field 'chosen' is empty after the last '\\n\\nAssistant:'");
                if (rc.isBlank()) throw row.error("field 'rejected' is empty after the last '\\n\\nAssistant:'");
                yield new Sample(transcript(row, prompt), assistant(cc.strip()), assistant(rc.strip()), prompt, cc, rc, null, true);
            }
            case KTO -> {
                boolean label = label(row);
                if (v.path("prompt").isArray()) yield new Sample(messages(row, "prompt"), completion(row, "completion", messages(row, "completion")), null, null, null, null, label, false);
                String p = text(row, "prompt"), c = text(row, "completion");
                yield new Sample(user(p), assistant(c), null, alpaca(p, ""), c, null, label, false);
            }
            case TOKENIZED, KTO_TOKENIZED -> throw new IllegalStateException("pre-tokenized rows have no text");
        };
    }

    /** A list of non-negative token ids (pre-tokenized formats). */
    static long[] ids(Row row, String key, boolean mayBeEmpty) {
        JsonNode n = row.value().get(key);
        if (n == null || n.isNull()) throw row.error("missing field '" + key + "'");
        if (!n.isArray()) throw row.error("field '" + key + "': expected a list of token ids, found " + kind(n));
        if (n.isEmpty() && !mayBeEmpty) throw row.error("field '" + key + "' is empty");
        long[] ids = new long[n.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode x = n.get(i);
            if (!x.canConvertToLong() || !x.isIntegralNumber() || x.asLong() < 0) throw row.error("field '" + key + "[" + i + "]': expected a token id (integer ≥ 0), found " + x);
            ids[i] = x.asLong();
        }
        return ids;
    }

    static boolean label(Row row) {
        JsonNode l = row.value().get("label");
        if (l == null || !l.isBoolean()) throw row.error("field 'label': expected true or false, found " + kind(l));
        return l.asBoolean();
    }

    private static String alpaca(String instruction, String input) {
        return Encoder.ALPACA_INSTRUCTION + instruction + (input.isEmpty() ? "" : Encoder.ALPACA_INPUT + input) + Encoder.ALPACA_RESPONSE;
    }

    private static List<Message> user(String s) {
        return List.of(new Message("user", s));
    }

    private static List<Message> assistant(String s) {
        return List.of(new Message("assistant", s));
    }

    /** "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:" → user a, assistant b, user c (the final empty slot is the generation prompt). */
    private static List<Message> transcript(Row row, String prompt) {
        var out = new ArrayList<Message>();
        Matcher m = HH_TURN.matcher(prompt);
        int at = -1;
        String role = null;
        while (m.find()) {
            if (role == null && !prompt.substring(0, m.start()).isBlank()) throw row.error("field 'chosen': expected the transcript to start with '\\n\\nHuman:'");
            if (role != null) out.add(new Message(role, prompt.substring(at, m.start()).strip()));
            role = m.group(1).equals("Human") ? "user" : "assistant";
            at = m.end();
        }
        if (out.isEmpty() || !out.getLast().role().equals("user")) throw row.error("field 'chosen': expected a '\\n\\nHuman:' turn before the last '\\n\\nAssistant:'");
        return out;
    }

    private static List<Message> completion(Row row, String key, List<Message> msgs) {
        if (msgs.isEmpty()) throw row.error("field '" + key + "': no turns after the prompt");
        if (!msgs.getFirst().role().equals("assistant")) throw row.error("field '" + key + "': expected an assistant turn, found '" + msgs.getFirst().role() + "'");
        if (msgs.stream().anyMatch(m -> m.role().equals("assistant") && m.content().isBlank())) throw row.error("field '" + key + "': an assistant turn is empty");
        return msgs;
    }

    /** [{role, content}] with TRL's roles. */
    private static List<Message> messages(Row row, String key) {
        JsonNode list = row.value().get(key);
        if (list == null || list.isNull()) throw row.error("missing field '" + key + "'");
        if (!list.isArray() || list.isEmpty()) throw row.error("field '" + key + "': expected a non-empty list of {role, content} messages, found " + kind(list));
        var out = new ArrayList<Message>();
        for (int i = 0; i < list.size(); i++) out.add(message(row, key + "[" + i + "]", list.get(i), "role", "content", Map.of()));
        return out;
    }

    private static final Map<String, String> SHAREGPT_ROLES = Map.of("human", "user", "gpt", "assistant", "system", "system", "user", "user", "assistant", "assistant");

    private static List<Message> turns(Row row, String key, String roleKey, String contentKey) {
        JsonNode list = row.value().get(key);
        if (list == null || list.isNull()) throw row.error("missing field '" + key + "'");
        if (!list.isArray() || list.isEmpty()) throw row.error("field '" + key + "': expected a non-empty list of {from, value} turns, found " + kind(list));
        var out = new ArrayList<Message>();
        for (int i = 0; i < list.size(); i++) out.add(message(row, key + "[" + i + "]", list.get(i), roleKey, contentKey, SHAREGPT_ROLES));
        return out;
    }

    private static Message turn(Row row, String key) {
        JsonNode n = row.value().get(key);
        if (n == null || n.isNull()) throw row.error("missing field '" + key + "'");
        Message m = message(row, key, n, "from", "value", SHAREGPT_ROLES);
        if (!m.role().equals("assistant")) throw row.error("field '" + key + ".from': expected 'gpt', found '" + n.path("from").asText() + "'");
        if (m.content().isBlank()) throw row.error("field '" + key + ".value' is empty");
        return m;
    }

    private static Message message(Row row, String where, JsonNode m, String roleKey, String contentKey, Map<String, String> roles) {
        if (m == null || !m.isObject()) throw row.error("field '" + where + "': expected an object with '" + roleKey + "' and '" + contentKey + "', found " + kind(m));
        JsonNode r = m.get(roleKey), c = m.get(contentKey);
        if (r == null || !r.isTextual()) throw row.error("field '" + where + "." + roleKey + "': expected a string, found " + kind(r));
        if (c == null || !c.isTextual()) throw row.error("field '" + where + "." + contentKey + "': expected a string, found " + kind(c));
        String role = roles.isEmpty() ? r.asText() : roles.get(r.asText());
        if (role == null || !Set.of("system", "user", "assistant", "tool").contains(role)) throw row.error("field '" + where + "." + roleKey + "': unknown role '" + r.asText() + "'");
        return new Message(role, c.asText());
    }

    private static String text(Row row, String key) {
        String s = optionalText(row, key);
        if (s.isBlank()) throw row.error("field '" + key + "' is empty");
        return s;
    }

    private static String optionalText(Row row, String key) {
        JsonNode n = row.value().get(key);
        if (n == null || n.isNull()) throw row.error("missing field '" + key + "'");
        if (!n.isTextual()) throw row.error("field '" + key + "': expected a string, found " + kind(n));
        return n.asText();
    }

    private static String kind(JsonNode n) {
        if (n == null || n.isNull()) return "nothing";
        if (n.isArray()) return n.isEmpty() ? "an empty list" : "a list";
        if (n.isObject()) return "an object";
        return n.getNodeType().name().toLowerCase() + " " + n;
    }
}
