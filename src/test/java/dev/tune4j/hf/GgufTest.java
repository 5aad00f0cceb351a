package dev.tune4j.hf;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.*;

/** GGUF export re-read: header, metadata, tokenizer, tensor layout and values per type. */
class GgufTest {
    @TempDir
    Path tmp;

    @Test
    @SuppressWarnings("unchecked")
    void llamaExportWithTokenizerRoundTrips() throws Exception {
        Path model = EmbeddedModel.stories260k();
        Path out = tmp.resolve("s.gguf");
        Gguf.export(model, out, Gguf.Type.F32);
        var g = Gguf.read(out);
        assertThat(g.metadata()).containsEntry("general.architecture", "llama").containsEntry("llama.block_count", 5L)
                .containsEntry("llama.attention.head_count", 8L).containsEntry("llama.attention.head_count_kv", 4L)
                .containsEntry("llama.embedding_length", 64L).containsEntry("llama.context_length", 512L)
                .containsEntry("tokenizer.ggml.model", "llama").containsEntry("tokenizer.ggml.bos_token_id", 1L).containsEntry("tokenizer.ggml.eos_token_id", 2L);
        assertThat((List<Object>) g.metadata().get("tokenizer.ggml.tokens")).hasSize(512).contains("<s>", "<0x41>");
        assertThat((List<Object>) g.metadata().get("tokenizer.ggml.scores")).hasSize(512);
        assertThat(g.tensors()).hasSize(2 + 5 * 9).extracting(Gguf.TensorEntry::name).contains("token_embd.weight", "blk.4.ffn_down.weight", "output_norm.weight")
                .doesNotContain("output.weight"); // tied
        var q = g.tensors().stream().filter(t -> t.name().equals("blk.0.attn_q.weight")).findFirst().orElseThrow();
        assertThat(q.dims()).containsExactly(64, 64); // innermost first
        try (ModelFolder f = ModelFolder.open(model)) {
            float[] ggufQ = Gguf.tensor(out, g, "blk.0.attn_q.weight");
            // undoing llama.cpp's permutation gives HF's rotate-half rows back
            float[] back = new float[ggufQ.length];
            int hd = 8, cols = 64;
            for (int h = 0; h < 8; h++)
                for (int i = 0; i < hd / 2; i++)
                    for (int j = 0; j < 2; j++)
                        System.arraycopy(ggufQ, (h * hd + 2 * i + j) * cols, back, (h * hd + j * hd / 2 + i) * cols, cols);
            assertThat(back).containsExactly(f.floats("model.layers.0.self_attn.q_proj.weight"));
            assertThat(Gguf.tensor(out, g, "blk.2.ffn_up.weight")).containsExactly(f.floats("model.layers.2.mlp.up_proj.weight"));
        }
    }

    @Test
    void f16AndQ8AreCloseAndNormsStayF32() throws Exception {
        Path model = Golden.golden("models/llama-untied");
        for (Gguf.Type t : List.of(Gguf.Type.F16, Gguf.Type.Q8_0)) {
            Path out = tmp.resolve(t + ".gguf");
            Gguf.export(model, out, t);
            var g = Gguf.read(out);
            try (ModelFolder f = ModelFolder.open(model)) {
                var emb = g.tensors().stream().filter(x -> x.name().equals("token_embd.weight")).findFirst().orElseThrow();
                assertThat(emb.type()).isEqualTo(t);
                assertClose(t + " embeddings", Gguf.tensor(out, g, "token_embd.weight"), f.floats("model.embed_tokens.weight"), t == Gguf.Type.F16 ? 1e-3 : 8e-3);
                assertThat(g.tensors().stream().filter(x -> x.name().endsWith("_norm.weight")).map(Gguf.TensorEntry::type)).containsOnly(Gguf.Type.F32);
                assertThat(g.tensors().stream().map(Gguf.TensorEntry::name)).contains("output.weight");
            }
            assertThat(Files.size(out)).isEqualTo(g.size());
        }
    }

    @Test
    void qwen2KeepsRotateHalfAndBiases() throws Exception {
        Path out = tmp.resolve("q.gguf");
        Gguf.export(Golden.golden("models/qwen2-untied"), out, Gguf.Type.F32);
        var g = Gguf.read(out);
        assertThat(g.metadata()).containsEntry("general.architecture", "qwen2");
        assertThat(g.tensors().stream().map(Gguf.TensorEntry::name)).contains("blk.1.attn_q.bias", "blk.1.attn_v.bias");
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/qwen2-untied"))) {
            assertThat(Gguf.tensor(out, g, "blk.0.attn_q.weight")).containsExactly(f.floats("model.layers.0.self_attn.q_proj.weight"));
        }
    }

    @Test
    void truncatedFileIsRejectedAndCliReportsTheExport() throws Exception {
        Path out = tmp.resolve("t.gguf");
        CliRun r = CliRun.of("export", "gguf", "--model", Golden.golden("models/mistral").toString(), "--out", out.toString(), "--dtype", "q8_0");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("GGUF v3").contains("validated");
        byte[] b = Files.readAllBytes(out);
        Path cut = tmp.resolve("cut.gguf");
        Files.write(cut, Arrays.copyOf(b, b.length - 100));
        assertThatThrownBy(() -> Gguf.read(cut)).isInstanceOf(HfFormatException.class).hasMessageContaining("runs past the end");
        Files.write(cut, "not gguf at all".getBytes());
        assertThatThrownBy(() -> Gguf.read(cut)).hasMessageContaining("bad magic");
    }
}
