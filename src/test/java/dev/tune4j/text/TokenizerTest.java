package dev.tune4j.text;

import dev.tune4j.Golden;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** Real tokenizer folders through the Rust tokenizers binding: well-known ids, special tokens, round trips. */
class TokenizerTest {
    @Test
    void llama3() {
        try (Tokenizer t = Tokenizer.load(Golden.asset("tokenizer-llama3_1-hf"))) {
            assertThat(t.encode("Hello world", true)).containsExactly(128000, 9906, 1917);
            assertThat(t.specialId("eos_token")).isEqualTo(128009);
            assertThat(t.specialId("bos_token")).isEqualTo(128000);
            assertThat(t.decode(t.encode("Grüße, 世界!", false), true)).isEqualTo("Grüße, 世界!");
        }
    }

    @Test
    void qwen3WithChatTemplateFromTheFolder() {
        try (Tokenizer t = Tokenizer.load(Golden.asset("tokenizer-qwen3-hf"))) {
            assertThat(t.encode("Hello world", true)).containsExactly(9707, 1879);
            assertThat(t.specialId("eos_token")).isEqualTo(151645);
            assertThat(t.specialTokens()).containsEntry("pad_token", "<|endoftext|>").containsKey("additional_special_tokens");
            String prompt = t.applyChatTemplate(List.of(Map.of("role", "user", "content", "Hi")), true);
            assertThat(prompt).isEqualTo("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
            long[] ids = t.encode(prompt, false);
            assertThat(ids[0]).isEqualTo(151644); // <|im_start|> is one special token
        }
    }

    @Test
    void llama2SentencePiece() {
        try (Tokenizer t = Tokenizer.load(Golden.asset("tokenizer-llama2-hf"))) {
            // "▁Hello" = 22557 and "▁world" = 1526 in this vocabulary; BOS from the post-processor
            assertThat(t.encode("Hello world", true)).containsExactly(1, 22557, 1526);
            assertThat(t.chatTemplate()).isEmpty();
            assertThat(t.decode(new long[]{1, 22557, 1526}, true)).isEqualTo("Hello world");
        }
    }
}
