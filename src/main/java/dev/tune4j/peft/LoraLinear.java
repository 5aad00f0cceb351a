package dev.tune4j.peft;

import dev.tune4j.model.Linear;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * One LoRA update on a frozen projection: delta(x) = scaling · B(A(dropout(x))), never forming B·A while training.
 * merge() folds scaling · B@A into the base weight (for export or fast inference) and unmerge() takes it out again.
 */
public final class LoraLinear implements Linear.Adapter, AutoCloseable {
    public final Tensor lora_A; // (r, in)
    public final Tensor lora_B; // (out, r)
    public final double scaling;
    double dropout; // a training setting: a continued adapter takes the new run's
    double weight = 1.0; // a merge of several adapters can weigh each one
    boolean training;
    final String name; // the adapter's name on the projection ("default" as in PEFT)
    private Linear mergedInto;

    LoraLinear(String name, Tensor a, Tensor b, double scaling, double dropout) {
        this.name = name;
        this.lora_A = a;
        this.lora_B = b;
        this.scaling = scaling;
        this.dropout = dropout;
    }

    @Override
    public Tensor delta(Tensor x, Tensor base, java.util.function.Supplier<Tensor> weight) {
        return delta(x);
    }

    Tensor delta(Tensor x) {
        var dtype = x.scalar_type().intern();
        Tensor in = training && dropout > 0 ? torch.dropout(x, dropout, true) : x;
        boolean cast = dtype != torch.ScalarType.Float; // A, B are fp32 (bf16 activations on GPU); no cast call at all on fp32
        if (cast) in = in.to(torch.ScalarType.Float);
        Tensor y = torch.linear(torch.linear(in, lora_A), lora_B).mul(new Scalar(scaling * weight)); // (…, r) → (…, out)
        return cast ? y.to(dtype) : y;
    }

    /** W ← W + scaling · B@A, in place, and the projection stops calling this adapter until unmerge(). */
    public void merge(Linear base) {
        if (mergedInto != null) throw new IllegalStateException("already merged");
        if (base.adapters().get(name) != this) throw new IllegalStateException("merge into the projection this adapter is attached to");
        if (base.quantized != null)
            throw new IllegalStateException("refusing to merge into 4-bit weights: the update would be rounded away; merge into the original (unquantized) base");
        try (PointerScope s = new PointerScope(); var ng = new org.bytedeco.pytorch.NoGradGuard()) {
            base.weight.add_(delta().to(base.weight.scalar_type().intern()));
        }
        mergedInto = base;
        base.detach(name);
    }

    public void unmerge() {
        if (mergedInto == null) throw new IllegalStateException("not merged");
        try (PointerScope s = new PointerScope(); var ng = new org.bytedeco.pytorch.NoGradGuard()) {
            mergedInto.weight.sub_(delta().to(mergedInto.weight.scalar_type().intern()));
        }
        mergedInto.attach(name, this);
        mergedInto = null;
    }

    /** weight · scaling · B@A in fp32 (out, in): formed only to merge, never while training. */
    Tensor delta() {
        return lora_B.matmul(lora_A).mul(new Scalar(scaling * weight));
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
    }
}
