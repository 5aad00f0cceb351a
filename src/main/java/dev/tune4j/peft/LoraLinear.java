package dev.tune4j.peft;

import dev.tune4j.model.Linear;
import dev.tune4j.tensor.Dropout;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.function.Supplier;

/**
 * One LoRA update on a frozen projection: delta(x) = scaling · B(A(dropout(x))), never forming B·A while training.
 * merge() folds scaling · B@A into the base weight (for export or fast inference) and unmerge() takes it out again.
 *
 * <p>With a magnitude vector m this is DoRA (PEFT 0.12 {@code use_dora}): the layer computes x·((m/n)[:,None]·(W + s·B@A))ᵀ
 * with n = ‖W + s·B@A‖ per output row, treated as a constant (detached, DoRA §4.3), so
 * delta = (m/n − 1)·x'Wᵀ + (m/n)·s·B(A(x')) with x' = dropout(x), as PEFT computes it (with dropout the rescaled base term
 * also sees the dropped-out input). n is the one place B@A is formed while training: once per forward, freed at once.
 * The bias is not rescaled. {@link #weight} w scales the whole delta, so w = 0 is the base and w = 1 the adapter.
 *
 * <p>Training LoRA (not DoRA) with dropout on the CPU, the term is differentiated by hand ({@link LoraDropout}): backward
 * draws the masks again, so autograd keeps neither them nor the dropped-out inputs.
 */
public final class LoraLinear implements Linear.Adapter, AutoCloseable {
    public final Tensor lora_A; // (r, in)
    public final Tensor lora_B; // (out, r)
    public final Tensor lora_magnitude_vector; // (out) fp32, trainable; null for plain LoRA
    public final double scaling;
    double dropout; // a training setting: a continued adapter takes the new run's
    double weight = 1.0; // a merge of several adapters can weigh each one
    private boolean training;
    final String name; // the adapter's name on the projection ("default" as in PEFT)
    private Linear mergedInto;
    private final java.util.List<LoraDropout> dropouts = new java.util.ArrayList<>(); // this projection's terms a graph may still call back
    private Tensor mergedScale; // DoRA: m/n at merge time (out), to invert the merge exactly as PEFT does (it caches n)

    LoraLinear(String name, Tensor a, Tensor b, Tensor magnitude, double scaling, double dropout) {
        this.name = name;
        this.lora_A = a;
        this.lora_B = b;
        this.lora_magnitude_vector = magnitude;
        this.scaling = scaling;
        this.dropout = dropout;
    }

    /** Training mode (dropout) on or off; the bf16 copies kept for evaluation are dropped on every switch. */
    void train(boolean on) {
        if (on != training) closeFrozen();
        training = on;
    }

    boolean training() {
        return training;
    }

    public boolean dora() {
        return lora_magnitude_vector != null;
    }

    @Override
    public Tensor delta(Tensor x, Tensor base, Supplier<Tensor> weight) {
        return dora() ? dora(x, base, weight.get()) : delta(x);
    }

    Tensor delta(Tensor x) {
        double p = training ? dropout : 0;
        var dtype = x.scalar_type().intern();
        if (dtype == torch.ScalarType.Float && LoraDropout.applies(this, x, p)) // (bf16 activations: A, B run in fp32 below)
            return LoraDropout.delta(this, x, p, scaling * weight * Dropout.scale(p), dropouts);
        var kept = Dropout.keep(x, p);   // B·A is linear: dropout's 1/(1 − p) joins the scaling
        Tensor in = kept.x();
        boolean cast = dtype != torch.ScalarType.Float; // A, B are fp32 (bf16 activations on GPU); no cast call at all on fp32
        if (cast) in = in.to(torch.ScalarType.Float);
        Tensor y = torch.linear(torch.linear(in, lora_A), lora_B).mul(new Scalar(scaling * weight * kept.scale())); // (…, r) → (…, out)
        return cast ? y.to(dtype) : y;
    }

    /**
     * CPU autocast (bf16-matmul path): A, B run in bf16 on the projection's bf16 input, as torch.autocast runs PEFT's
     * lora_A/B; A, B, their gradients and AdamW state stay fp32. With dropout while training the term is differentiated
     * by hand (LoraDropout); without, autograd keeps the bf16 input q/k/v (gate/up) share. DoRA: fp32.
     */
    @Override
    public Tensor deltaBf16(Tensor x, Tensor base, Supplier<Tensor> w) {
        if (dora()) return dora(x, base, w.get());
        double p = training ? dropout : 0;
        if (LoraDropout.applies(this, x, p)) return LoraDropout.delta(this, x, p, scaling * weight * Dropout.scale(p), dropouts);
        var bf16 = torch.ScalarType.BFloat16;
        if (!training && !org.bytedeco.pytorch.GradMode.is_enabled()) { // evaluation, generation
            refreshFrozen();
            return torch.linear(torch.linear(x, frozenA), frozenB);
        }
        var kept = Dropout.keep(x, p);
        return torch.linear(torch.linear(kept.x(), lora_A.to(bf16)), lora_B.mul(new Scalar(scaling * weight * kept.scale())).to(bf16)); // (…, out) bf16; the scale on B, not on the output
    }

    // Out of training and without gradients (evaluation, sample generation, serving) A and scaling·B are used in bf16 as
    // kept copies: a decode step ran six ops per adapted projection, three of them casts and the scaling (a quarter of
    // Qwen2.5-0.5B's step). Rebuilt when A, B, the scaling or the weight change, and dropped on every train/eval switch.
    private Tensor frozenA, frozenB;
    private long frozenVersion = -1;
    private double frozenScale;

    private void refreshFrozen() {
        long version = lora_A.__dispatch__version() * 1_000_003L + lora_B.__dispatch__version();
        double scale = scaling * weight;
        if (frozenA != null && version == frozenVersion && scale == frozenScale) return;
        closeFrozen();
        frozenA = Tensors.escape(() -> lora_A.to(torch.ScalarType.BFloat16));
        frozenB = Tensors.escape(() -> lora_B.mul(new Scalar(scale)).to(torch.ScalarType.BFloat16));
        frozenVersion = version;
        frozenScale = scale;
    }

    private void closeFrozen() {
        if (frozenA != null) frozenA.close();
        if (frozenB != null) frozenB.close();
        frozenA = frozenB = null;
    }

    /** PEFT's lora_dropout while training (tensor/Dropout: 4× faster on the CPU than libtorch's, a smaller mask saved). */
    private Tensor dropout(Tensor x) {
        return training ? Dropout.apply(x, dropout) : x;
    }

    /** DoRA's delta in fp32 (PEFT casts the input to the adapter's dtype): base = x Wᵀ before bias, w = the (dequantized) W. */
    private Tensor dora(Tensor x, Tensor base, Tensor w) {
        var dtype = x.scalar_type().intern();
        boolean drop = training && dropout > 0, cast = dtype != torch.ScalarType.Float;
        Tensor in = dropout(x);
        if (cast) in = in.to(torch.ScalarType.Float);
        Tensor f = lora_magnitude_vector.div(Tensors.scoped(() -> rowNorm(w)));                   // (out) m/n, n detached
        Tensor xw = drop ? torch.linear(in, w.to(torch.ScalarType.Float)) : cast ? base.to(torch.ScalarType.Float) : base; // (…, out)
        Tensor lora = torch.linear(torch.linear(in, lora_A), lora_B);                             // (…, r) → (…, out)
        Tensor y = xw.mul(f.sub(new Scalar(1)).mul(new Scalar(weight))).add(lora.mul(f.mul(new Scalar(scaling * weight)))); // (…, out)
        return cast ? y.to(dtype) : y;
    }

    /** n = ‖W + s·B@A‖ per output row (out), fp32, without gradient; the (out, in) temporaries die with the caller's scope. */
    Tensor rowNorm(Tensor w) {
        try (NoGradGuard ng = new NoGradGuard()) {
            return w.to(torch.ScalarType.Float).add(lora_B.matmul(lora_A), new Scalar(scaling)).norm(new ScalarOptional(new Scalar(2)), 1);
        }
    }

    /**
     * W ← W + scaling · B@A in place (DoRA: W ← W + w·((m/n)[:,None]·(W + s·B@A) − W), which is PEFT's (m/n)·(W + s·B@A) at
     * w = 1), and the projection stops calling this adapter until unmerge().
     */
    public void merge(Linear base) {
        if (mergedInto != null) throw new IllegalStateException("already merged");
        if (base.adapters().get(name) != this) throw new IllegalStateException("merge into the projection this adapter is attached to");
        if (base.quantized != null)
            throw new dev.tune4j.hf.UserError("refusing to merge into 4-bit weights: the update would be rounded away; merge into the original (unquantized) base");
        try (PointerScope s = new PointerScope(); var ng = new NoGradGuard()) {
            if (!dora()) base.weight.add_(delta().to(base.weight.scalar_type().intern()));
            else {
                Tensor f = lora_magnitude_vector.div(rowNorm(base.weight));                            // (out)
                mergedScale = Tensors.escape(() -> f.detach().clone());
                Tensor[] ab = rowCoefficients();
                base.weight.copy_(base.weight.to(torch.ScalarType.Float).mul(ab[0]).add(delta().mul(ab[1]))); // (out, in)
            }
        }
        mergedInto = base;
        base.detach(name);
    }

    /** LoRA subtracts the update; DoRA inverts W' = a·W + b·s·B@A with the row factors of the merge (PEFT: W'/(m/n) − s·B@A). */
    public void unmerge() {
        if (mergedInto == null) throw new IllegalStateException("not merged");
        Tensor w = mergedInto.weight;
        try (PointerScope s = new PointerScope(); var ng = new NoGradGuard()) {
            if (!dora()) w.sub_(delta().to(w.scalar_type().intern()));
            else {
                Tensor[] ab = rowCoefficients();
                w.copy_(w.to(torch.ScalarType.Float).sub(delta().mul(ab[1])).div(ab[0]));
                mergedScale.close();
                mergedScale = null;
            }
        }
        mergedInto.attach(name, this);
        mergedInto = null;
    }

    /** DoRA merge as W' = a·W + b·(s·B@A) per row: a = 1 − w + w·m/n, b = w·m/n, both (out, 1). */
    private Tensor[] rowCoefficients() {
        Tensor b = mergedScale.mul(new Scalar(weight)).unsqueeze(1);
        return new Tensor[]{b.add(new Scalar(1 - weight)), b};
    }

    /** weight · scaling · B@A in fp32 (out, in) for LoRA, scaling · B@A for DoRA: formed only to merge. */
    Tensor delta() {
        return lora_B.matmul(lora_A).mul(new Scalar(dora() ? scaling : scaling * weight));
    }

    public boolean merged() {
        return mergedInto != null;
    }

    public long r() {
        return lora_A.size(0);
    }

    @Override
    public void close() {
        lora_A.close();
        lora_B.close();
        if (lora_magnitude_vector != null) lora_magnitude_vector.close();
        if (mergedScale != null) mergedScale.close();
        dropouts.forEach(LoraDropout::close);
        dropouts.clear();
        LoraDropout.closeDone();
        closeFrozen();
    }
}
