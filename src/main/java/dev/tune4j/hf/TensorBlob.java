package dev.tune4j.hf;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** A tensor in memory, ready to be written: little-endian bytes of {@code dtype} in row-major order. */
public record TensorBlob(DType dtype, long[] shape, byte[] data) {
    public TensorBlob {
        long n = 1;
        for (long d : shape) n *= d;
        if (n * dtype.bytes != data.length)
            throw new IllegalArgumentException("shape needs " + n * dtype.bytes + " bytes of " + dtype + ", got " + data.length);
    }

    public static TensorBlob ofFloats(float[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        return new TensorBlob(DType.F32, shape, b.array());
    }

    /** fp32 values stored as {@code dtype} (F32, BF16 or F16), rounding to nearest even. */
    public static TensorBlob ofFloats(DType dtype, float[] v, long... shape) {
        if (dtype == DType.F32) return ofFloats(v, shape);
        if (dtype != DType.BF16 && dtype != DType.F16) throw new IllegalArgumentException("not a float storage type: " + dtype);
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) b.putShort(dtype == DType.BF16 ? Half.floatToBf16(f) : Half.floatToF16(f));
        return new TensorBlob(dtype, shape, b.array());
    }

    public static TensorBlob ofLongs(long[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().put(v);
        return new TensorBlob(DType.I64, shape, b.array());
    }
}
