package dev.tune4j.quant;

import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * A 4-bit weight held as libtorch tensors (packed codes, per-block absmax or its double-quantized form) and rebuilt with
 * tensor ops when used: codes → table values → × absmax per block → the compute dtype. Nothing dense is kept.
 */
public final class QuantizedWeight implements dev.tune4j.model.Linear.Quantized {
    private final long[] shape;
    private final int blocksize;
    private final float offset;      // double quantization's mean absmax
    private final Tensor packed, table, absmax, nestedCodes, nestedAbsmax, dyn;
    private final Compute compute;
    private final long bytes;

    public QuantizedWeight(QuantState s, Compute c) {
        this.compute = c;
        this.bytes = s.bytes();
        this.shape = s.shape().clone();
        this.blocksize = s.blocksize();
        this.offset = s.offset();
        this.packed = Tensors.escape(() -> c.placeIndex(Tensor.create(s.packed(), s.packed().length)));
        this.table = Tensors.escape(() -> place(Tensors.floats(s.quantType().equals("nf4") ? Codebooks.NF4 : Codebooks.FP4, 16)));
        if (s.nested()) {
            this.absmax = null;
            this.nestedCodes = Tensors.escape(() -> c.placeIndex(Tensor.create(s.nestedCodes(), s.nestedCodes().length)));
            this.nestedAbsmax = Tensors.escape(() -> place(Tensors.floats(s.nestedAbsmax(), s.nestedAbsmax().length)));
            this.dyn = Tensors.escape(() -> place(Tensors.floats(Quantizer.SIGNED_DYN, 256)));
        } else {
            this.absmax = Tensors.escape(() -> place(Tensors.floats(s.absmax(), s.absmax().length)));
            this.nestedCodes = this.nestedAbsmax = this.dyn = null;
        }
    }

    private Tensor place(Tensor hostFloat) {
        return compute.cuda() ? hostFloat.to(compute.device(), torch.ScalarType.Float) : hostFloat;
    }

    /** The weight in the compute dtype, shape as stored; a temporary of the caller's scope. */
    @Override
    public Tensor dequantize() {
        long n = 1, bs = blocksize;
        for (long d : shape) n *= d;
        long blocks = (n + bs - 1) / bs;
        Tensor p = packed.to(torch.ScalarType.Long).bitwise_and(new Scalar(0xff));                    // ((n+1)/2)
        Tensor codes = torch.stack(new TensorVector(p.bitwise_right_shift(new Scalar(4)), p.bitwise_and(new Scalar(15))), 1).view(-1); // (2·⌈n/2⌉)
        Tensor values = table.index_select(0, codes);                                                 // (2·⌈n/2⌉) fp32
        Tensor scale = absmax != null ? absmax
                : dyn.index_select(0, nestedCodes.to(torch.ScalarType.Long).bitwise_and(new Scalar(0xff)))
                .mul(nestedAbsmax.repeat_interleave(QuantState.NESTED_BLOCKSIZE).narrow(0, 0, blocks)).add(new Scalar(offset)); // (blocks)
        long padded = blocks * bs;
        if (values.size(0) < padded) values = torch.cat(new TensorVector(values, torch.zeros(padded - values.size(0)).to(values.device(), torch.ScalarType.Float)), 0);
        Tensor w = values.narrow(0, 0, padded).view(blocks, bs).mul(scale.view(blocks, 1)).view(-1).narrow(0, 0, n);
        return w.view(shape).to(compute.dtype());
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    @Override
    public long bytes() {
        return bytes;
    }

    @Override
    public void close() {
        for (Tensor t : new Tensor[]{packed, table, absmax, nestedCodes, nestedAbsmax, dyn}) if (t != null) t.close();
    }
}
