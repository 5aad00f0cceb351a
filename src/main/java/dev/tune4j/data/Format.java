package dev.tune4j.data;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;

import java.util.*;

/**
 * The record shapes tune4j reads, each turned into a conversation (or raw text):
 * alpaca {instruction, input?, output}; chat {messages: [{role, content}]}; sharegpt {conversations: [{from, value}]};
 * prompt_completion {prompt, completion}; text {text}.
 */
public enum Format {
    ALPACA, CHAT, SHAREGPT, PROMPT_COMPLETION, TEXT;

    public static Format parse(String s) {
        for (Format f : values()) if (f.name().equalsIgnoreCase(s.replace('-', '_'))) return f;
        throw new UserError("unknown format '" + s + "': expected alpaca, chat, sharegpt, prompt_completion or text");
    }

    /** Detected from the first record's keys. */
    public static Format detect(Row first) {
        JsonNode v = first.value();
        if (v == null || !v.isObject()) throw first.error("expected a JSON object");
        if (v.has("messages")) return CHAT;
        if (v.has("conversations")) return SHAREGPT;
        if (v.has("instruction") && v.has("output")) return ALPACA;
        if (v.has("prompt") && v.has("completion")) {
            if (v.has("label")) throw first.error("has a 'label': unpaired KTO data (SFT would learn the undesirable completions too); train it with --stage kto");
            return PROMPT_COMPLETION;
        }
        if (v.has("chosen") && v.has("rejected")) throw first.error("has 'chosen' and 'rejected': preference pairs; train them with --stage dpo, orpo or simpo");
        if (v.has("text")) return TEXT;
        var keys = new ArrayList<String>();
        v.fieldNames().forEachRemaining(keys::add);
        throw first.error("cannot tell the format from keys " + keys + ": expected instruction/output, messages, conversations, prompt/completion or text (or pass --format)");
    }

    /** A message of a conversation. */
    public record Message(String role, String content) {
        public Map<String, Object> asMap() {
            return Map.of("role", role, "content", content);
        }
    }

    /** The record as a conversation; TEXT gives one message with role "text". Errors name the field. */
    public List<Message> toMessages(Row row) {
        JsonNode v = row.value();
        if (v == null || !v.isObject()) throw row.error("expected a JSON object");
        return switch (this) {
            case ALPACA -> {
                String instruction = text(row, "instruction", false), input = v.has("input") ? text(row, "input", true) : "", output = text(row, "output", false);
                yield List.of(new Message("user", input.isEmpty() ? instruction : instruction + "\n\n" + input), new Message("assistant", output));
            }
            case PROMPT_COMPLETION -> List.of(new Message("user", text(row, "prompt", false)), new Message("assistant", text(row, "completion", false)));
            case TEXT -> List.of(new Message("text", text(row, "text", false)));
            case CHAT -> turns(row, "messages", "role", "content", Map.of());
            case SHAREGPT -> turns(row, "conversations", "from", "value", Map.of("human", "user", "gpt", "assistant", "system", "system", "user", "user", "assistant", "assistant"));
        };
    }

    private static List<Message> turns(Row row, String listKey, String roleKey, String contentKey, Map<String, String> roles) {
        JsonNode list = row.value().get(listKey);
        if (list == null || !list.isArray() || list.isEmpty()) throw row.error("field '" + listKey + "': expected a non-empty list of turns");
        var out = new ArrayList<Message>();
        for (int i = 0; i < list.size(); i++) {
            JsonNode m = list.get(i);
            String where = listKey + "[" + i + "]";
            if (!m.isObject()) throw row.error("field '" + where + "': expected an object with '" + roleKey + "' and '" + contentKey + "'");
            JsonNode r = m.get(roleKey), c = m.get(contentKey);
            if (r == null || !r.isTextual()) throw row.error("field '" + where + "." + roleKey + "': expected a string, found " + r);
            if (c == null || !c.isTextual()) throw row.error("field '" + where + "." + contentKey + "': expected a string, found " + c);
            String role = roles.isEmpty() ? r.asText() : roles.get(r.asText());
            if (role == null || !Set.of("system", "user", "assistant", "tool").contains(role))
                throw row.error("field '" + where + "." + roleKey + "': unknown role '" + r.asText() + "'");
            out.add(new Message(role, c.asText()));
        }
        if (out.stream().noneMatch(m -> m.role().equals("assistant"))) throw row.error("field '" + listKey + "': no assistant turn to learn from");
        if (out.stream().filter(m -> m.role().equals("assistant")).anyMatch(m -> m.content().isBlank()))
            throw row.error("field '" + listKey + "': an assistant turn is empty");
        return out;
    }

    private static String text(Row row, String key, boolean mayBeEmpty) {
        JsonNode n = row.value().get(key);
        if (n == null || n.isNull()) throw row.error("missing field '" + key + "'");
        if (!n.isTextual()) throw row.error("field '" + key + "': expected a string, found " + n.getNodeType().name().toLowerCase());
        if (!mayBeEmpty && n.asText().isBlank()) throw row.error("field '" + key + "' is empty");
        return n.asText();
    }
}
