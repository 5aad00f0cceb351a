package dev.tune4j.text;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.HfFormatException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * A Hugging Face tokenizer folder: {@code tokenizer.json} run by the Rust tokenizers library (through DJL, natives bundled,
 * so ids equal transformers'), plus {@code tokenizer_config.json}'s special tokens and chat template.
 */
public final class Tokenizer implements AutoCloseable {
    private final HuggingFaceTokenizer hf;
    private final Map<String, Integer> addedTokens;          // special/added token content → id
    private final Map<String, Object> specialTokens;         // bos_token, eos_token, ... as the template sees them
    private final ChatTemplate chatTemplate;                 // null when the folder has none

    private Tokenizer(HuggingFaceTokenizer hf, Map<String, Integer> added, Map<String, Object> special, ChatTemplate t) {
        this.hf = hf;
        this.addedTokens = added;
        this.specialTokens = special;
        this.chatTemplate = t;
    }

    public static Tokenizer load(Path dir) {
        Path json = dir.resolve("tokenizer.json");
        if (!Files.exists(json)) throw new HfFormatException(dir, "no tokenizer.json");
        var mapper = new ObjectMapper();
        var added = new LinkedHashMap<String, Integer>();
        try {
            JsonNode root = mapper.readTree(json.toFile());
            root.path("added_tokens").forEach(t -> added.put(t.path("content").asText(), t.path("id").asInt()));
        } catch (IOException e) {
            throw new HfFormatException(json, "not valid JSON: " + e.getMessage(), e);
        }
        Map<String, Object> special = new LinkedHashMap<>();
        ChatTemplate template = null;
        Path cfgPath = dir.resolve("tokenizer_config.json");
        if (Files.exists(cfgPath)) {
            JsonNode cfg;
            try {
                cfg = mapper.readTree(cfgPath.toFile());
            } catch (IOException e) {
                throw new HfFormatException(cfgPath, "not valid JSON: " + e.getMessage(), e);
            }
            special = specialTokensMap(cfg);
            JsonNode ct = cfg.path("chat_template");
            if (ct.isTextual()) template = ChatTemplate.parse(ct.asText(), cfgPath + " chat_template");
            else if (ct.isArray()) // a list of named templates: use "default"
                for (JsonNode n : ct) if (n.path("name").asText().equals("default")) template = ChatTemplate.parse(n.path("template").asText(), cfgPath + " chat_template[default]");
        }
        try {
            var opts = Map.of("addSpecialTokens", "true", "truncation", "false", "padding", "false", "modelMaxLength", "100000000");
            return new Tokenizer(HuggingFaceTokenizer.newInstance(json, opts), added, special, template);
        } catch (IOException | RuntimeException e) {
            throw new HfFormatException(json, "the tokenizers library refused it: " + e.getMessage(), e);
        }
    }

    /**
     * The variables transformers passes to a chat template: bos_token, eos_token, unk_token, pad_token (strings, or the
     * {@code content} of an AddedToken object) and additional_special_tokens; absent or null ones are left out.
     */
    static Map<String, Object> specialTokensMap(JsonNode cfg) {
        var m = new LinkedHashMap<String, Object>();
        for (String k : List.of("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")) {
            JsonNode v = cfg.get(k);
            if (v == null || v.isNull()) continue;
            m.put(k, v.isObject() ? v.path("content").asText() : v.asText());
        }
        JsonNode extra = cfg.path("additional_special_tokens");
        if (extra.isArray() && !extra.isEmpty()) {
            var l = new ArrayList<String>();
            extra.forEach(x -> l.add(x.isObject() ? x.path("content").asText() : x.asText()));
            m.put("additional_special_tokens", l);
        }
        return m;
    }

    /** Token ids of text; {@code addSpecialTokens} applies the tokenizer's post-processor (e.g. BOS for Llama). */
    public long[] encode(String text, boolean addSpecialTokens) {
        return hf.encode(text, addSpecialTokens, false).getIds();
    }

    /** Token ids with the [start, end) character span of each token in {@code text} (Java char indices). */
    public record Encoded(long[] ids, int[] starts, int[] ends) {}

    public Encoded encodeWithOffsets(String text, boolean addSpecialTokens) {
        var e = hf.encode(text, addSpecialTokens, false);
        var spans = e.getCharTokenSpans();
        int[] cpToChar = new int[text.codePointCount(0, text.length()) + 1]; // the library counts code points
        for (int cp = 0, ch = 0; cp < cpToChar.length; cp++) {
            cpToChar[cp] = ch;
            if (ch < text.length()) ch += Character.charCount(text.codePointAt(ch));
        }
        int n = e.getIds().length;
        int[] starts = new int[n], ends = new int[n];
        for (int i = 0; i < n; i++) {
            starts[i] = spans[i] == null ? -1 : cpToChar[Math.min(spans[i].getStart(), cpToChar.length - 1)];
            ends[i] = spans[i] == null ? -1 : cpToChar[Math.min(spans[i].getEnd(), cpToChar.length - 1)];
        }
        return new Encoded(e.getIds(), starts, ends);
    }

    public String decode(long[] ids, boolean skipSpecialTokens) {
        return hf.decode(ids, skipSpecialTokens);
    }

    public Map<String, Object> specialTokens() {
        return Collections.unmodifiableMap(specialTokens);
    }

    /** The id of a special token by role (e.g. "eos_token"), or null. */
    public Integer specialId(String role) {
        Object content = specialTokens.get(role);
        if (content == null) return null;
        Integer id = addedTokens.get(content.toString());
        if (id != null) return id;
        long[] ids = encode(content.toString(), false);
        return ids.length == 1 ? (int) ids[0] : null;
    }

    public Optional<ChatTemplate> chatTemplate() {
        return Optional.ofNullable(chatTemplate);
    }


    /**
     * The conversation rendered by the folder's chat template, with the special tokens as variables.
     *
     * @throws IllegalStateException when the folder has no chat template
     */
    public String applyChatTemplate(List<Map<String, Object>> messages, boolean addGenerationPrompt) {
        if (chatTemplate == null) throw new dev.tune4j.hf.UserError("this tokenizer has no chat_template in tokenizer_config.json");
        var vars = new LinkedHashMap<String, Object>(specialTokens);
        vars.put("messages", messages);
        vars.put("add_generation_prompt", addGenerationPrompt);
        vars.put("tools", null);
        vars.put("documents", null);
        return chatTemplate.render(vars);
    }

    @Override
    public void close() {
        hf.close();
    }
}
