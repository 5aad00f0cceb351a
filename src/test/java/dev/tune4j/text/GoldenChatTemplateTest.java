package dev.tune4j.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.*;

import static org.assertj.core.api.Assertions.assertThat;

/** Every template in golden/chat renders exactly as transformers' apply_chat_template did. */
class GoldenChatTemplateTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @ParameterizedTest
    @ValueSource(strings = {"tokenizer-qwen3-hf", "tokenizer-llama3_1-hf", "tokenizer-llama3-hf"})
    void rendersLikeTransformers(String tokenizer) throws Exception {
        JsonNode golden = JSON.readTree(Golden.golden("chat/" + tokenizer + ".json").toFile());
        String source = templateSource(tokenizer);
        assertThat(sha256(source)).as("template text is the one the golden file was rendered with").isEqualTo(golden.get("chat_template_sha256").asText());
        ChatTemplate t = ChatTemplate.parse(source, tokenizer);
        Map<String, Object> special = JSON.convertValue(golden.get("special_tokens_map"), Map.class);
        for (JsonNode c : golden.get("cases")) {
            var vars = new HashMap<String, Object>(special);
            vars.put("messages", JSON.convertValue(c.get("messages"), List.class));
            vars.put("add_generation_prompt", c.get("add_generation_prompt").asBoolean());
            vars.put("tools", null);
            vars.put("documents", null);
            assertThat(t.render(vars)).as(tokenizer + " / " + c.get("name").asText()).isEqualTo(c.get("rendered").asText());
        }
    }

    /** The Llama 3 (not 3.1) tokenizer folder is not in assets; its published template ships as a test resource, checked by hash. */
    static String templateSource(String tokenizer) throws Exception {
        if (tokenizer.equals("tokenizer-llama3-hf")) {
            Golden.golden("chat/" + tokenizer + ".json");
            try (var in = GoldenChatTemplateTest.class.getResourceAsStream("/chat/llama3.jinja")) {
                return new String(Objects.requireNonNull(in).readAllBytes(), StandardCharsets.UTF_8);
            }
        }
        Path cfg = Golden.asset(tokenizer + "/tokenizer_config.json");
        return JSON.readTree(Files.readString(cfg)).get("chat_template").asText();
    }

    static String sha256(String s) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
    }
}
