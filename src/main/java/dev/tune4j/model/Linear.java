package dev.tune4j.model;

import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.util.*;
import java.util.function.Supplier;

/**
 * y = x Wᵀ + b, with W stored (out, in) as in every HF checkpoint. {@code bias} may be null. Adapters are attached by name
 * (PEFT's "default" for a single one) and add their own terms: y = x Wᵀ + Σ adapter(x, x Wᵀ, W) + b. Each adapter sees the
 * input, the base output before bias and the (dequantized) weight, so LoRA adds scale·B(A(x)) and DoRA rescales the base.
 * One adapter can be switched off by name (the DPO reference is the same model with the policy adapter off), and with
 * {@link Routing} each row of the batch uses its own adapter or none (serving several adapters in one pass).
 */
public final class Linear {
    /** An addition to a frozen projection; implemented by the peft package. */
    public interface Adapter {
        /**
         * @param x      (…, in) input rows that use this adapter
         * @param base   (…, out) x Wᵀ for the same rows, before the bias
         * @param weight the (dequantized) W (out, in), built on first call within this forward and shared by the adapters
         * @return (…, out) what to add to the base output
         */
        Tensor delta(Tensor x, Tensor base, Supplier<Tensor> weight);

        /** On the bf16-matmul path (CPU autocast): x and base are bf16, the result is bf16, own GEMMs may run in bf16. */
        default Tensor deltaBf16(Tensor x, Tensor base, Supplier<Tensor> weight) {
            return delta(x, base, weight);
        }
    }

    /** A frozen weight kept compressed (QLoRA): rebuilt in the compute dtype for each use, never stored dense. */
    public interface Quantized extends AutoCloseable {
        Tensor dequantize();  // (out, in), a temporary of the caller's scope

        /** The weight in the given precision (bf16 for the bf16-matmul path); a temporary of the caller's scope. */
        default Tensor dequantize(torch.ScalarType dtype) {
            return dequantize().to(dtype);
        }

        long[] shape();       // (out, in)

        long bytes();         // what the compressed weight occupies

        @Override
        void close();
    }

    /**
     * Which adapter each row of the next forward passes uses (null entry = the base alone), shared by every projection
     * of a model. Null rows = no routing: every enabled adapter applies to every row.
     */
    public static final class Routing {
        private String[] rows;
        private boolean oneAdapter, contiguous; // derived once per pass, read by every projection

        public void set(String[] rowAdapters) {
            rows = rowAdapters == null ? null : rowAdapters.clone();
            if (rows == null) return;
            oneAdapter = java.util.Arrays.stream(rows).allMatch(r -> r != null && r.equals(rows[0]));
            var seen = new HashSet<String>(); // each adapter's rows one run (sorted by adapter): each is a view of the batch
            contiguous = true;
            for (int i = 0; i < rows.length && contiguous; i++)
                if ((i == 0 || !java.util.Objects.equals(rows[i], rows[i - 1])) && !seen.add(rows[i])) contiguous = false;
        }

        public void clear() {
            rows = null;
        }

        String[] rows() {
            return rows;
        }
    }

    public Tensor weight;       // (out, in); null once quantized
    public Quantized quantized; // non-null for a quantized (frozen) weight
    public final Tensor bias;   // (out) or null
    private final Routing routing;
    private final boolean bf16Matmul; // bf16 GEMM over fp32 activations (Compute#mixed): CPU autocast
    private final LinkedHashMap<String, Adapter> adapters = new LinkedHashMap<>(2); // empty = plain projection
    private final Set<String> disabled = new HashSet<>();

    public Linear(Tensor weight, Tensor bias) {
        this(weight, bias, new Routing(), false);
    }

    Linear(Tensor weight, Tensor bias, Routing routing, boolean bf16Matmul) {
        this.weight = weight;
        this.bias = bias;
        this.routing = routing;
        this.bf16Matmul = bf16Matmul;
    }

    public Tensor forward(Tensor x) {
        if (bf16Matmul) return forwardBf16(x);
        Tensor w = quantized != null ? quantized.dequantize() : weight;
        if (adapters.isEmpty()) return bias == null ? torch.linear(x, w) : torch.linear(x, w, new TensorOptional(bias));
        Tensor y = withAdapters(x, torch.linear(x, w), () -> w);                              // (…, out)
        return bias == null ? y : y.add(bias);
    }

    /**
     * The input as this projection's GEMM reads it: on the bf16-matmul path cast to bf16 once, so projections that share
     * an input (q/k/v, gate/up) share the cast and what autograd saves of it; else x itself.
     */
    public Tensor gemmInput(Tensor x) {
        return bf16Matmul && x.scalar_type() != torch.ScalarType.BFloat16 ? x.to(torch.ScalarType.BFloat16) : x;
    }

    /**
     * CPU autocast: the GEMM in bf16 on a bf16 (or bf16-cast) input, the output left in bf16 as torch.autocast leaves
     * it (bias and the adapters' terms added in bf16; the adapters run their own GEMMs in bf16 over their fp32
     * weights); a bf16 weight is used as stored, and autograd keeps it, not a copy, for the input's gradient. An adapter
     * that asks for the weight (DoRA's norm) gets it upcast once.
     */
    private Tensor forwardBf16(Tensor x) {
        var bf16 = torch.ScalarType.BFloat16;
        Tensor xb = gemmInput(x);
        Tensor w = quantized != null ? quantized.dequantize(bf16) : weight.to(bf16);
        Tensor y = gemm(xb, w);                                                               // (…, out) bf16
        if (!adapters.isEmpty()) {
            Tensor[] full = new Tensor[1];
            y = withAdapters(xb, y, () -> full[0] != null ? full[0] : (full[0] = w.to(torch.ScalarType.Float)));
        }
        return bias == null ? y : y.add(bias.to(bf16));
    }

    /**
     * x Wᵀ over x's rows as one 2-D GEMM. libtorch hands oneDNN's bf16 matmul a 3-D input with its strides, and a
     * narrowed view (prefill's last position: sizes (1, 1, C), strides (T·C, C, 1)) sends it to a reference kernel:
     * Qwen2.5-0.5B's head took 1 s instead of 13 ms. Flattened, the rows are a plain (N, C) matrix.
     */
    public static Tensor gemm(Tensor x, Tensor w) {
        if (x.dim() <= 2) return torch.linear(x, w);
        long[] shape = Tensors.shape(x);
        shape[shape.length - 1] = w.size(0);
        return torch.linear(x.reshape(-1, x.size(-1)), w).view(shape);
    }

    private Tensor delta(Adapter a, Tensor x, Tensor base, Supplier<Tensor> weight) {
        return bf16Matmul ? a.deltaBf16(x, base, weight) : a.delta(x, base, weight);
    }

    private Tensor withAdapters(Tensor x, Tensor base, Supplier<Tensor> weight) {
        String[] rows = routing.rows();
        Tensor y = base;
        if (rows == null) {
            for (var e : adapters.entrySet())
                if (!disabled.contains(e.getKey())) y = y.add(delta(e.getValue(), x, base, weight));
            return y;
        }
        if (rows.length != x.size(0)) throw new IllegalStateException("routing names " + rows.length + " rows, the batch has " + x.size(0));
        if (!routing.oneAdapter && routing.contiguous) { // rows sorted by adapter (the engine sorts them): views of the batch, no copies
            Tensor out = y.clone();
            for (int i = 0; i < rows.length; ) {
                int j = i;
                while (j < rows.length && java.util.Objects.equals(rows[j], rows[i])) j++;
                Adapter a = rows[i] == null || disabled.contains(rows[i]) ? null : adapters.get(rows[i]);
                if (a != null)
                    out.narrow(0, i, j - i).add_(delta(a, x.narrow(0, i, j - i), base.narrow(0, i, j - i), weight));
                i = j;
            }
            return out;
        }
        // grouped by adapter: each adapter computes its rows only, and the deltas are scattered back into the output
        for (var e : adapters.entrySet()) {
            long[] idx = java.util.stream.IntStream.range(0, rows.length).filter(i -> e.getKey().equals(rows[i])).asLongStream().toArray();
            if (idx.length == 0 || disabled.contains(e.getKey())) continue;
            if (idx.length == rows.length) {
                y = y.add(delta(e.getValue(), x, base, weight));
                continue;
            }
            Tensor at = Tensors.longs(idx, idx.length);
            if (x.is_cuda()) at = at.to(x.device(), torch.ScalarType.Long);
            Tensor d = delta(e.getValue(), x.index_select(0, at), base.index_select(0, at), weight);
            y = y.index_add(0, at, d);
        }
        return y;
    }

    /** Attaches an adapter under a name (an existing one of that name is an error: detach it first). */
    public void attach(String name, Adapter a) {
        if (adapters.containsKey(name)) throw new IllegalStateException("an adapter named '" + name + "' is already attached");
        adapters.put(name, a);
    }

    /** Removes the named adapter and returns it (null when none has that name). */
    public Adapter detach(String name) {
        disabled.remove(name);
        return adapters.remove(name);
    }

    /** Turns one adapter off (it stays attached, its weights untouched) or on again. */
    public void enable(String name, boolean on) {
        if (!adapters.containsKey(name)) throw new IllegalArgumentException("no adapter named '" + name + "' on this projection");
        if (on) disabled.remove(name);
        else disabled.add(name);
    }

    public boolean enabled(String name) {
        return adapters.containsKey(name) && !disabled.contains(name);
    }

    public Map<String, Adapter> adapters() {
        return Collections.unmodifiableMap(adapters);
    }

    public long inFeatures() {
        return quantized != null ? quantized.shape()[1] : weight.size(1);
    }

    public long outFeatures() {
        return quantized != null ? quantized.shape()[0] : weight.size(0);
    }

    /** The weight in the activations' precision (dequantized for a 4-bit one): a temporary of the caller's scope when quantized. */
    public Tensor denseWeight() {
        return quantized != null ? quantized.dequantize() : weight;
    }

    /** Replaces the dense weight by a compressed one and frees the dense tensor. */
    public void quantize(Quantized q) {
        if (weight != null) weight.close();
        weight = null;
        quantized = q;
    }

    void close() {
        if (weight != null) weight.close();
        if (quantized != null) quantized.close();
        if (bias != null) bias.close();
    }
}
