package dev.tune4j.peft;

import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.HfFormatException;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.*;

/** Merges reproduce PEFT's merge_and_unload, verify themselves, weigh several adapters, and refuse quantized bases. */
class MergeTest {
    @TempDir
    Path tmp;

    static final PrintStream QUIET = new PrintStream(PrintStream.nullOutputStream());

    @ParameterizedTest
    @ValueSource(strings = {"llama-tied", "llama-untied", "qwen2-tied", "qwen2-untied", "mistral", "llama-untied-rslora", "qwen2-tied-rslora"})
    void reproducesPeftMergedModel(String name) throws Exception {
        Path base = Golden.golden("models/" + name.replace("-rslora", "")), adapter = Golden.golden("lora/" + name + "/adapter");
        Path out = tmp.resolve("merged");
        var r = Merge.run(base, List.of(adapter), List.of(), out, null, Long.MAX_VALUE, null, QUIET);
        assertThat(r.dtype()).isEqualTo(DType.F32);
        assertThat(r.relativeLogitDiff()).isLessThan(1e-5);
        try (ModelFolder mine = ModelFolder.open(out); ModelFolder peft = ModelFolder.open(Golden.golden("lora/" + name + "/merged"))) {
            assertThat(mine.names()).containsExactlyInAnyOrderElementsOf(peft.names());
            for (String t : peft.names()) assertClose(name + " " + t, mine.floats(t), peft.floats(t), 1e-5);
        }
    }

    @Test
    void loadingWritingAndVerifyingReportTheirBytes() throws Exception {
        Path base = Golden.golden("models/llama-tied"), adapter = Golden.golden("lora/llama-tied/adapter");
        var seen = new java.util.LinkedHashMap<String, long[]>(); // task → {total, added}
        Merge.run(base, List.of(adapter), List.of(), tmp.resolve("metered"), DType.BF16, Long.MAX_VALUE, null, QUIET, (task, total) -> {
            long[] t = {total, 0};
            seen.put(task.replaceAll(" .*", ""), t);
            return new Merge.Meter() {
                public void add(long bytes) { t[1] += bytes; }

                public void close() {}
            };
        });
        assertThat(seen).containsOnlyKeys("loading", "writing", "verifying");
        long written;
        try (ModelFolder f = ModelFolder.open(tmp.resolve("metered"))) {
            written = f.totalBytes();
        }
        assertThat(seen.get("writing")).containsExactly(written, written); // bf16: 2 bytes per parameter
        assertThat(seen.get("verifying")).containsExactly(written, written);
        assertThat(seen.get("loading")[1]).isEqualTo(seen.get("loading")[0]);
    }

    @Test
    void weightedAdaptersAddUp() throws Exception {
        Path base = Golden.golden("models/llama-tied"), adapter = Golden.golden("lora/llama-tied/adapter");
        Merge.run(base, List.of(adapter, adapter), List.of(0.25, 0.75), tmp.resolve("two"), null, Long.MAX_VALUE, null, QUIET);
        Merge.run(base, List.of(adapter), List.of(), tmp.resolve("one"), null, Long.MAX_VALUE, null, QUIET);
        try (ModelFolder a = ModelFolder.open(tmp.resolve("two")); ModelFolder b = ModelFolder.open(tmp.resolve("one"))) {
            for (String t : b.names()) assertClose(t, a.floats(t), b.floats(t), 1e-6);
        }
    }

    @Test
    void bf16OutputShardedAndVerified() throws Exception {
        var r = Merge.run(Golden.golden("models/mistral"), List.of(Golden.golden("lora/mistral/adapter")), List.of(), tmp.resolve("bf16"),
                DType.BF16, 100_000, null, QUIET);
        assertThat(r.relativeLogitDiff()).isLessThanOrEqualTo(r.tolerance()).isGreaterThan(0);
        assertThat(tmp.resolve("bf16/model.safetensors.index.json")).exists();
        try (ModelFolder f = ModelFolder.open(tmp.resolve("bf16"))) {
            assertThat(f.dtypeCounts()).containsOnlyKeys(DType.BF16);
        }
    }

    @Test
    void failedVerificationWritesNothing() throws Exception {
        Path out = tmp.resolve("never");
        Path base = Golden.golden("models/llama-tied"), adapter = Golden.golden("lora/llama-tied/adapter"); // outside the lambda: a skip must not count as the failure
        assertThatThrownBy(() -> Merge.run(base, List.of(adapter), List.of(), out, DType.BF16, Long.MAX_VALUE, 1e-9, QUIET)).hasMessageContaining("merge verification failed").hasMessageContaining("tolerance");
        assertThat(out).doesNotExist();
        try (var s = Files.list(tmp)) {
            assertThat(s.toList()).as("no staging folder left").isEmpty();
        }
    }

    @Test
    void quantizedBaseIsRefused() throws Exception {
        Path q = tmp.resolve("q");
        Files.createDirectories(q);
        Files.writeString(q.resolve("config.json"), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_attention_heads\":4,"
                + "\"quantization_config\":{\"quant_method\":\"bitsandbytes\",\"load_in_4bit\":true,\"bnb_4bit_quant_type\":\"nf4\"}}");
        assertThatThrownBy(() -> Merge.run(q, List.of(tmp), List.of(), tmp.resolve("x"), null, Long.MAX_VALUE, null, QUIET))
                .isInstanceOf(HfFormatException.class).hasMessageContaining("quantized").hasMessageContaining("Dequantize first");
    }

    @Test
    void cliMergeCopiesTokenizerAndGenerationConfig() throws Exception {
        Path out = tmp.resolve("cli");
        CliRun r = CliRun.of("merge", "--model", Golden.golden("models/qwen2-untied").toString(), "--adapter", Golden.golden("lora/qwen2-untied/adapter").toString(),
                "--out", out.toString(), "--max-shard-size", "150KB");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("verified");
        assertThat(out.resolve("generation_config.json")).exists();
        assertThat(Files.readString(out.resolve("generation_config.json"))).isEqualTo(Files.readString(Golden.golden("models/qwen2-untied/generation_config.json")));
        try (ModelFolder f = ModelFolder.open(out)) {
            assertThat(f.names()).hasSize(f.config().expectedTensors().size());
            assertThat(f.names().stream().map(n -> f.info(n)).map(TensorInfo::dtype)).containsOnly(DType.F32);
        }
        CliRun bad = CliRun.of("merge", "--model", Golden.golden("models/llama-tied").toString(), "--adapter", tmp.resolve("missing").toString(), "--out", tmp.resolve("bad").toString());
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("no adapter_config.json").doesNotContain("\tat ");
        assertThat(tmp.resolve("bad")).doesNotExist();
    }
}
