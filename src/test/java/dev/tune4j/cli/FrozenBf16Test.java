package dev.tune4j.cli;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.Bf16Weight;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.model.Linear;
import dev.tune4j.tensor.Compute;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A bf16 folder's frozen projections stay bf16 in a checkpointed LoRA run (half the bytes), upcast per use: the adapter
 * equals, bit for bit, the one trained on an fp32 folder holding the same (bf16-representable) values.
 */
class FrozenBf16Test {
    @TempDir
    Path tmp;

    /** stories260K saved as a bf16 folder and as an fp32 folder of the same (bf16-representable) values, tokenizer beside. */
    private Path[] folders() throws Exception {
        Path stories = EmbeddedModel.stories260k(), bf16 = tmp.resolve("bf16"), fp32 = tmp.resolve("fp32");
        try (var f = ModelFolder.open(stories); LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
            m.save(bf16, DType.BF16, Long.MAX_VALUE);
        }
        try (var f = ModelFolder.open(bf16); LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
            m.save(fp32, DType.F32, Long.MAX_VALUE); // the same values, stored in fp32
        }
        for (Path dir : List.of(bf16, fp32))
            try (Stream<Path> s = Files.list(stories)) {
                for (Path p : s.toList()) if (p.getFileName().toString().startsWith("tokenizer")) Files.copy(p, dir.resolve(p.getFileName()));
            }
        return new Path[]{bf16, fp32};
    }

    /**
     * On the bf16-matmul path a bf16 folder's embedding stays bf16 and, tied, is the head's GEMM operand too (one bf16
     * matrix instead of an fp32 one plus a bf16 copy): logits equal, bit for bit, those of the fp32 folder of the same values.
     */
    @Test
    void onTheBf16MatmulPathABf16FoldersEmbeddingStaysBf16WithTheSameLogits() throws Exception {
        Path[] dirs = folders();
        try (var fb = ModelFolder.open(dirs[0]); LlamaModel a = Bf16Weight.load(fb, Compute.cpuBf16Matmul(), b -> {}).model();
             var ff = ModelFolder.open(dirs[1]); LlamaModel b = Bf16Weight.load(ff, Compute.cpuBf16Matmul(), x -> {}).model();
             var scope = new org.bytedeco.javacpp.PointerScope()) {
            var bf16 = org.bytedeco.pytorch.global.torch.ScalarType.BFloat16;
            assertThat(a.embed_tokens.scalar_type().intern()).isEqualTo(bf16);
            assertThat(a.lm_head == a.embed_tokens).isEqualTo(a.config.tieWordEmbeddings());
            assertThat(a.lm_head.scalar_type().intern()).isEqualTo(bf16);
            assertThat(b.embed_tokens.scalar_type().intern()).as("an fp32 folder's embedding is not rounded").isEqualTo(org.bytedeco.pytorch.global.torch.ScalarType.Float);
            var ids = dev.tune4j.tensor.Tensors.longs(new long[]{1, 17, 300, 42, 7, 99, 3, 250}, 2, 4);
            assertThat(a.logits(ids, null, null).equal(b.logits(ids, null, null))).isTrue();
        } finally {
            Compute.cpu(); // this JVM's other tests run the fp32 thread layout
        }
    }

    @Test
    void aBf16FolderTrainsWithHalfTheProjectionBytesAndTheSameAdapter() throws Exception {
        Path[] dirs = folders();
        Path bf16 = dirs[0], fp32 = dirs[1];
        try (var f = ModelFolder.open(bf16); var loaded = Bf16Weight.load(f, Compute.cpu(), b -> {}).model()) {
            long stored = 0, dense = 0;
            for (Linear l : loaded.linears().values()) {
                assertThat(l.quantized).isInstanceOf(Bf16Weight.class);
                stored += l.quantized.bytes();
                dense += 4 * l.outFeatures() * l.quantized.shape()[1];
            }
            assertThat(stored * 2).isEqualTo(dense);
        }
        Path data = tmp.resolve("d.jsonl");
        var sb = new StringBuilder();
        for (int i = 0; i < 24; i++) sb.append("{\"instruction\": \"Count to ").append(i % 5 + 2).append("\", \"output\": \"").append("one two three four five six".substring(0, 4 * (i % 5 + 2) - 1)).append("\"}\n");
        Files.writeString(data, sb);
        var runs = new ArrayList<CliRun>();
        for (Path model : List.of(bf16, fp32)) {
            var r = CliRun.of("train", "--model", model.toString(), "--data", data.toString(), "--out", tmp.resolve("run-" + model.getFileName()).toString(),
                    "--gradient-checkpointing", "--max-steps", "4", "--batch-size", "4", "--samples", "0", "--lora-dropout", "0");
            assertThat(r.code()).as(r.err() + r.out()).isZero();
            runs.add(r);
        }
        assertThat(runs.get(0).out()).contains("the frozen projections are kept in bf16").contains("weights (frozen; projections bf16)");
        assertThat(runs.get(1).out()).doesNotContain("kept in bf16");
        DistributedTest.assertSameTensors(tmp.resolve("run-bf16/adapter/adapter_model.safetensors"), tmp.resolve("run-fp32/adapter/adapter_model.safetensors"), 0);
    }
}
