package dev.tune4j.hf;

import java.util.Arrays;

/** One header entry of a safetensors file: data lives at [begin, end) of the byte buffer after the header. */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public long byteSize() {
        return end - begin;
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
