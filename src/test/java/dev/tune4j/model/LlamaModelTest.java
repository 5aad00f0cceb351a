package dev.tune4j.model;

import dev.tune4j.hf.ConfigPresets;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;

/** Properties of the model that need no reference files: cache = no cache, padding on either side = no padding, RoPE scaling. */
class LlamaModelTest {
    static LlamaModel model;
    static final long[] SEQ = {1, 17, 200, 33, 4, 99, 150, 7, 8, 250};

    @BeforeAll
    static void build() {
        model = LlamaModel.random(ConfigPresets.tiny(), 7, Compute.cpu());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static float[] logits(long[] ids, long[] mask, int b) {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            int t = ids.length / b;
            return Tensors.toFloats(model.logits(Tensors.longs(ids, b, t), null, mask == null ? null : Tensors.longs(mask, b, t)));
        }
    }

    /**
     * Linear.gemm runs any input as a plain (N, C) matrix: a narrowed view (prefill's last position, whose size-1 dims
     * carry the full tensor's strides, which sent oneDNN's bf16 matmul to a reference kernel 80× slower) gives what a
     * contiguous copy gives, in the input's leading shape.
     */
    @Test
    void gemmOfANarrowedViewEqualsThatOfAContiguousCopy() {
        try (PointerScope s = new PointerScope()) {
            for (var dtype : new org.bytedeco.pytorch.global.torch.ScalarType[]{org.bytedeco.pytorch.global.torch.ScalarType.Float, org.bytedeco.pytorch.global.torch.ScalarType.BFloat16}) {
                Tensor w = org.bytedeco.pytorch.global.torch.randn(7, 16).to(dtype);
                Tensor view = org.bytedeco.pytorch.global.torch.randn(1, 5, 16).to(dtype).narrow(1, 4, 1);   // (1, 1, 16), strides (80, 16, 1)
                Tensor got = Linear.gemm(view, w), want = org.bytedeco.pytorch.global.torch.linear(view.clone(), w);
                assertThat(Tensors.shape(got)).containsExactly(1, 1, 7);
                assertClose("gemm of a narrowed view, " + dtype, Tensors.toFloats(got.to(org.bytedeco.pytorch.global.torch.ScalarType.Float)),
                        Tensors.toFloats(want.to(org.bytedeco.pytorch.global.torch.ScalarType.Float)), 0.05); // bf16 rounding
            }
        }
    }

    @Test
    void kvCacheDecodingEqualsFullForward() {
        int v = model.config.vocabSize(), n = SEQ.length;
        float[] full = logits(SEQ, null, 1);
        try (KvCache cache = model.newCache(1, n); NoGradGuard ng = new NoGradGuard()) {
            try (PointerScope s = new PointerScope()) { // prefill 4 tokens, then one at a time
                float[] pre = Tensors.toFloats(model.logits(model.forward(Tensors.longs(Arrays.copyOf(SEQ, 4), 1, 4), null, null, cache, null)));
                assertClose("prefill", pre, Arrays.copyOf(full, 4 * v), 1e-5);
            }
            for (int i = 4; i < n; i++) {
                try (PointerScope s = new PointerScope()) {
                    float[] step = Tensors.toFloats(model.logits(model.forward(Tensors.longs(new long[]{SEQ[i]}, 1, 1), null, null, cache, null)));
                    assertClose("step " + i, step, Arrays.copyOfRange(full, i * v, (i + 1) * v), 1e-5);
                }
            }
            assertThat(cache.length()).isEqualTo(n);
        }
    }

    @Test
    void leftAndRightPaddingGiveTheUnpaddedLogits() {
        int v = model.config.vocabSize(), n = SEQ.length, pad = 3;
        float[] alone = logits(SEQ, null, 1);
        long[] left = new long[n + pad], right = new long[n + pad], lmask = new long[n + pad], rmask = new long[n + pad];
        for (int i = 0; i < n; i++) {
            left[pad + i] = SEQ[i];
            lmask[pad + i] = 1;
            right[i] = SEQ[i];
            rmask[i] = 1;
        }
        // batch of two rows: the padded row and a full-length row, so padding really is mixed in a batch
        long[] ids = concat(left, Arrays.copyOf(SEQ, n + pad)), mask = concat(lmask, ones(n + pad));
        float[] got = logits(ids, mask, 2);
        assertClose("left padded", Arrays.copyOfRange(got, pad * v, (pad + n) * v), alone, 1e-4);
        float[] gotR = logits(concat(right, Arrays.copyOf(SEQ, n + pad)), concat(rmask, ones(n + pad)), 2);
        assertClose("right padded", Arrays.copyOf(gotR, n * v), alone, 1e-4);
        for (float x : got) assertThat(Float.isFinite(x)).as("no NaN even on fully padded query rows").isTrue();
    }

    @Test
    void packedRowsNeverAttendAcrossExamples() {
        int v = model.config.vocabSize();
        long[] a = {1, 40, 41, 42, 43}, b = {1, 90, 91};
        float[] aloneA = logits(a, null, 1), aloneB = logits(b, null, 1);
        long[] ids = {1, 40, 41, 42, 43, 1, 90, 91, 0, 0};
        long[] pos = {0, 1, 2, 3, 4, 0, 1, 2, 0, 0};
        long[] seg = {1, 1, 1, 1, 1, 2, 2, 2, 0, 0};
        float[] packed;
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            var batch = Batch.packed(Tensors.longs(ids, 1, 10), Tensors.longs(pos, 1, 10), Tensors.longs(seg, 1, 10));
            packed = Tensors.toFloats(model.logits(model.forward(batch, null, null)));
        }
        assertClose("example 1 in the packed row", Arrays.copyOf(packed, 5 * v), aloneA, 1e-4);
        assertClose("example 2 in the packed row", Arrays.copyOfRange(packed, 5 * v, 8 * v), aloneB, 1e-4);
        for (float x : packed) assertThat(Float.isFinite(x)).isTrue();
    }

    @Test
    void ropeScalingChangesOnlyTheFrequenciesItShould() {
        ModelConfig base = ConfigPresets.tiny();
        float[] plain = invFreq(base);
        var l3 = new ModelConfig.RopeScaling("llama3", 8, 1, 4, 64);
        float[] scaled = invFreq(withScaling(base, l3));
        double lowWavelen = 64 / 1.0, highWavelen = 64 / 4.0;
        for (int i = 0; i < plain.length; i++) {
            double wavelen = 2 * Math.PI / plain[i];
            if (wavelen < highWavelen) assertThat(scaled[i]).isEqualTo(plain[i]);
            else if (wavelen > lowWavelen) assertThat((double) scaled[i]).isCloseTo(plain[i] / 8.0, org.assertj.core.data.Offset.offset(1e-9));
            else assertThat(scaled[i]).isBetween(plain[i] / 8f, plain[i]);
        }
        float[] linear = invFreq(withScaling(base, new ModelConfig.RopeScaling("linear", 4, 0, 0, 0)));
        for (int i = 0; i < plain.length; i++) assertThat(linear[i]).isEqualTo(plain[i] / 4f);
        // HF: inv_freq = 1 / 10000^(2i/d) in fp32
        assertThat(plain[0]).isEqualTo(1f);
        assertThat((double) plain[1]).isCloseTo(Math.pow(10000, -2.0 / 32), org.assertj.core.data.Offset.offset(1e-7));
    }

    @Test
    void dynamicNtkLeavesShortSequencesAlone() {
        ModelConfig dyn = withScaling(ConfigPresets.tiny(), new ModelConfig.RopeScaling("dynamic", 2, 0, 0, 0));
        try (Rope plain = new Rope(ConfigPresets.tiny(), Compute.cpu()); Rope d = new Rope(dyn, Compute.cpu()); PointerScope s = new PointerScope()) {
            Tensor pos = Tensors.longs(new long[]{0, 5, 100}, 1, 3);
            assertClose("short", Tensors.toFloats(d.cosSin(pos, 100)[0]), Tensors.toFloats(plain.cosSin(pos, 100)[0]), 0);
            Tensor far = Tensors.longs(new long[]{0, 5, 2000}, 1, 3);
            assertThat(Tensors.toFloats(d.cosSin(far, 2000)[0])).isNotEqualTo(Tensors.toFloats(plain.cosSin(far, 2000)[0]));
        }
    }

    @Test
    void llamaAttentionAndMlpBiasesAreLoadedAndUsed() throws Exception {
        var c = com.fasterxml.jackson.databind.json.JsonMapper.builder().build().readTree(
                "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":1,"
                        + "\"num_attention_heads\":2,\"vocab_size\":50,\"attention_bias\":true,\"mlp_bias\":true}");
        ModelConfig cfg = ModelConfig.parse(c);
        assertThat(cfg.expectedTensors()).containsKeys("model.layers.0.self_attn.o_proj.bias", "model.layers.0.mlp.down_proj.bias");
        try (LlamaModel m = LlamaModel.random(cfg, 1, Compute.cpu()); PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor ids = Tensors.longs(new long[]{1, 2, 3}, 1, 3);
            float[] before = Tensors.toFloats(m.logits(ids, null, null));
            m.layers.getFirst().self_attn.o_proj.bias.fill_(new org.bytedeco.pytorch.Scalar(0.5));
            assertThat(Tensors.toFloats(m.logits(ids, null, null))).isNotEqualTo(before);
            assertThat(m.namedTensors()).containsKeys("model.layers.0.self_attn.o_proj.bias", "model.layers.0.mlp.gate_proj.bias");
        }
    }

    static float[] invFreq(ModelConfig c) {
        try (Rope r = new Rope(c, Compute.cpu())) {
            return Tensors.toFloats(r.invFreq);
        }
    }

    static ModelConfig withScaling(ModelConfig c, ModelConfig.RopeScaling s) {
        return new ModelConfig(c.arch(), c.vocabSize(), c.hiddenSize(), c.intermediateSize(), c.numLayers(), c.numHeads(), c.numKvHeads(), c.headDim(),
                c.rmsNormEps(), c.ropeTheta(), s, c.maxPositionEmbeddings(), c.tieWordEmbeddings(), c.attentionBias(), c.outputBias(), c.mlpBias(),
                c.slidingWindow(), c.bosTokenId(), c.eosTokenIds(), c.padTokenId(), c.torchDtype());
    }

    static long[] concat(long[] a, long[] b) {
        long[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    static long[] ones(int n) {
        long[] r = new long[n];
        Arrays.fill(r, 1);
        return r;
    }

}
