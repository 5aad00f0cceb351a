package dev.tune4j.model;

import org.bytedeco.pytorch.Tensor;

/** One pre-norm transformer block: the two residual lines. */
public final class DecoderLayer {
    public final RmsNorm input_layernorm, post_attention_layernorm;
    public final Attention self_attn;
    public final Mlp mlp;
    final int index;

    DecoderLayer(int index, RmsNorm inputNorm, Attention attn, RmsNorm postNorm, Mlp mlp) {
        this.index = index;
        this.input_layernorm = inputNorm;
        this.self_attn = attn;
        this.post_attention_layernorm = postNorm;
        this.mlp = mlp;
    }

    public Tensor forward(Tensor x, Tensor cos, Tensor sin, AttentionMask.Plan mask, KvCache cache) {
        Tensor h = x.add(self_attn.forward(input_layernorm.forward(x), cos, sin, mask, cache, index));
        return h.add(mlp.forward(post_attention_layernorm.forward(h)));
    }

    /** One token per row, each row with its own cache ({@link Attention#forwardRows}). */
    public Tensor forwardRows(Tensor x, Tensor cos, Tensor sin, KvCache[] caches, int window) {
        Tensor h = x.add(self_attn.forwardRows(input_layernorm.forward(x), cos, sin, caches, index, window));
        return h.add(mlp.forward(post_attention_layernorm.forward(h)));
    }

    void close() {
        input_layernorm.weight.close();
        post_attention_layernorm.weight.close();
        self_attn.close();
        mlp.close();
    }
}
