package dev.tune4j.model;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** SwiGLU feed-forward: down(silu(gate(x)) · up(x)). */
public final class Mlp {
    public final Linear gate_proj, up_proj, down_proj;

    Mlp(Linear gate, Linear up, Linear down) {
        this.gate_proj = gate;
        this.up_proj = up;
        this.down_proj = down;
    }

    public Tensor forward(Tensor x) {
        x = gate_proj.gemmInput(x); // one bf16 cast for gate and up (bf16 GEMMs)
        return down_proj.forward(torch.silu(gate_proj.forward(x)).mul(up_proj.forward(x))); // (B, T, C)
    }

    void close() {
        gate_proj.close();
        up_proj.close();
        down_proj.close();
    }
}
