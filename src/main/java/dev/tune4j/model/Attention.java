package dev.tune4j.model;

import dev.tune4j.hf.ModelConfig;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/** Grouped-query self-attention with RoPE, through libtorch's scaled_dot_product_attention (GQA handled by the kernel). */
public final class Attention {
    public final Linear q_proj, k_proj, v_proj, o_proj;
    final int nHead, nKvHead, headDim;

    Attention(ModelConfig c, Linear q, Linear k, Linear v, Linear o) {
        this.q_proj = q;
        this.k_proj = k;
        this.v_proj = v;
        this.o_proj = o;
        this.nHead = c.numHeads();
        this.nKvHead = c.numKvHeads();
        this.headDim = c.headDim();
    }

    /**
     * @param x     (B, T, C)
     * @param cos   (B, 1, T, hd), sin likewise
     * @param mask  additive (B, 1, T, S) or null
     * @param cache past keys/values, or null
     */
    public Tensor forward(Tensor x, Tensor cos, Tensor sin, AttentionMask.Plan mask, KvCache cache, int layer) {
        long b = x.size(0), t = x.size(1);
        x = q_proj.gemmInput(x);                                                    // one bf16 cast for q, k, v (bf16 GEMMs)
        Tensor q = q_proj.forward(x).view(b, t, nHead, headDim).transpose(1, 2);   // (B, nh, T, hd)
        Tensor k = k_proj.forward(x).view(b, t, nKvHead, headDim).transpose(1, 2); // (B, nkv, T, hd)
        Tensor v = v_proj.forward(x).view(b, t, nKvHead, headDim).transpose(1, 2); // (B, nkv, T, hd)
        q = Rope.apply(q, cos, sin);                                                // rotated and attended in cos's precision
        k = Rope.apply(k, cos, sin);                                                // (fp32 on the bf16-matmul path)
        v = v.to(cos.scalar_type());
        if (cache != null) {
            Tensor[] kv = cache.append(layer, k, v);                               // (B, nkv, S, hd)
            k = kv[0];
            v = kv[1];
        }
        Tensor y = torch.scaled_dot_product_attention(q, k, v,
                mask.mask() == null ? new TensorOptional() : new TensorOptional(mask.mask()),
                0.0, mask.causal(), new DoubleOptional(), nKvHead != nHead);        // (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(b, t, (long) nHead * headDim);                // (B, T, nh*hd)
        return o_proj.forward(y);                                                   // (B, T, C)
    }

    /**
     * One new token per row, each row with its own cache (continuous batching: rows at different positions). The
     * projections run batched; attention runs per row over that row's cache (a query at the end attends to every cached
     * key, or to the last {@code window} with a sliding window).
     *
     * @param x (B, 1, C); cos, sin (B, 1, 1, hd) at each row's position
     */
    public Tensor forwardRows(Tensor x, Tensor cos, Tensor sin, KvCache[] caches, int layer, int window) {
        long b = x.size(0);
        x = q_proj.gemmInput(x);
        Tensor q = Rope.apply(q_proj.forward(x).view(b, 1, nHead, headDim).transpose(1, 2), cos, sin);   // (B, nh, 1, hd)
        Tensor k = Rope.apply(k_proj.forward(x).view(b, 1, nKvHead, headDim).transpose(1, 2), cos, sin); // (B, nkv, 1, hd)
        Tensor v = v_proj.forward(x).view(b, 1, nKvHead, headDim).transpose(1, 2).to(cos.scalar_type()); // (B, nkv, 1, hd)
        var rows = new org.bytedeco.pytorch.TensorVector();
        for (int i = 0; i < b; i++) {
            Tensor[] kv = caches[i].append(layer, k.narrow(0, i, 1), v.narrow(0, i, 1));                // (1, nkv, S, hd)
            Tensor ki = kv[0], vi = kv[1];
            long s = ki.size(2);
            if (window > 0 && s > window) {
                ki = ki.narrow(2, s - window, window);
                vi = vi.narrow(2, s - window, window);
            }
            rows.push_back(torch.scaled_dot_product_attention(q.narrow(0, i, 1), ki, vi, new TensorOptional(), 0.0, false,
                    new DoubleOptional(), nKvHead != nHead));                                          // (1, nh, 1, hd)
        }
        Tensor y = torch.cat(rows, 0).transpose(1, 2).reshape(b, 1, (long) nHead * headDim);           // (B, 1, nh*hd)
        return o_proj.forward(y);                                                                       // (B, 1, C)
    }

    void close() {
        q_proj.close();
        k_proj.close();
        v_proj.close();
        o_proj.close();
    }
}
