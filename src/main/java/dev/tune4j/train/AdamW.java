package dev.tune4j.train;

import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;

/**
 * AdamW with decoupled weight decay, step for step as torch.optim.AdamW (single-tensor path):
 * p ← p·(1 − lr·wd); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
 * State (m, v) is fp32, created once outside any step scope and freed by close(). With {@code offload} the state lives in
 * host memory and each step runs on host copies of parameter and gradient, then copies the parameter back (on the CPU
 * build the copies are aliases, so the same code path runs everywhere).
 */
public final class AdamW implements Optimizer {
    /** A parameter and its weight decay (0 for biases and norms, as trainers usually group them). */
    public record Param(Tensor tensor, double weightDecay) {}

    final List<Param> params;
    final double beta1, beta2, eps;
    final List<Tensor> expAvg = new ArrayList<>(), expAvgSq = new ArrayList<>();
    final boolean offload;
    long step;

    public AdamW(List<Param> params, double beta1, double beta2, double eps) {
        this(params, beta1, beta2, eps, false);
    }

    public AdamW(List<Param> params, double beta1, double beta2, double eps, boolean offload) {
        this.params = List.copyOf(params);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.offload = offload;
        for (Param p : params) {
            expAvg.add(Tensors.escape(() -> offload ? torch.zeros(Tensors.shape(p.tensor())) : torch.zeros_like(p.tensor())));
            expAvgSq.add(Tensors.escape(() -> offload ? torch.zeros(Tensors.shape(p.tensor())) : torch.zeros_like(p.tensor())));
        }
    }

    /** The host (CPU, fp32) view of a tensor: itself on the CPU build, a copy from the GPU otherwise. */
    static Tensor host(Tensor t) {
        return t.to(new org.bytedeco.pytorch.Device(torch.DeviceType.CPU), torch.ScalarType.Float);
    }

    /** One update at learning rate {@code lr}; parameters without a gradient are skipped. */
    public void step(double lr) {
        step++;
        double bc1 = 1 - Math.pow(beta1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        try (NoGradGuard ng = new NoGradGuard()) {
            for (int i = 0; i < params.size(); i++) {
                // one scope per parameter: a step's temporaries never outlive their parameter's update (a scope around
                // the whole loop held them all to the end, +4 bytes/param at the peak; the planner's check found it)
                try (PointerScope s = new PointerScope()) {
                    Tensor param = params.get(i).tensor(), grad = param.grad();
                    if (!grad.defined()) continue;
                    Tensor p = offload ? host(param) : param, g = offload ? host(grad) : grad;
                    Tensor m = expAvg.get(i), v = expAvgSq.get(i);
                    p.mul_(new Scalar(1 - lr * params.get(i).weightDecay()));
                    m.mul_(new Scalar(beta1)).add_(g, new Scalar(1 - beta1));
                    v.mul_(new Scalar(beta2)).addcmul_(g, g, new Scalar(1 - beta2));
                    Tensor update = m.div(v.sqrt().div_(new Scalar(bc2Sqrt)).add_(new Scalar(eps))).mul_(new Scalar(lr / bc1));
                    p.sub_(update);
                    if (offload) param.copy_(p); // back to the device (a no-op on the CPU build, where p is param)
                }
            }
        }
    }

    /** Drops every gradient (set to undefined, as zero_grad(set_to_none=True)). */
    public void zeroGrad() {
        try (PointerScope s = new PointerScope()) {
            for (Param p : params) {
                Tensor g = p.tensor().grad();
                if (g.defined()) p.tensor().mutable_grad().reset();
            }
        }
    }

    public long steps() {
        return step;
    }

    public void setSteps(long steps) {
        step = steps;
    }

    public java.util.LinkedHashMap<String, Tensor> state() {
        var m = new java.util.LinkedHashMap<String, Tensor>();
        for (int i = 0; i < params.size(); i++) {
            m.put("exp_avg." + i, expAvg.get(i));
            m.put("exp_avg_sq." + i, expAvgSq.get(i));
        }
        return m;
    }

    public List<Tensor> expAvg() {
        return expAvg;
    }

    public List<Tensor> expAvgSq() {
        return expAvgSq;
    }

    @Override
    public void close() {
        expAvg.forEach(Tensor::close);
        expAvgSq.forEach(Tensor::close);
    }
}
