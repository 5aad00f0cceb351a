package dev.tune4j.quant;

/**
 * A 4-bit blockwise-quantized tensor as bitsandbytes keeps it: packed codes (two per byte, first element in the high
 * nibble), one absmax per block (float32, or 8-bit codes + nested float32 scales + offset with double quantization).
 *
 * @param shape      the original shape (row-major)
 * @param absmax     float32 absmax per block, or null when nested
 * @param nestedCodes uint8 codes of absmax − offset on the signed dynamic map (blocksize 256), or null
 * @param nestedAbsmax float32 scale per 256 first-level blocks, or null
 */
public record QuantState(String quantType, int blocksize, long[] shape, byte[] packed, float[] absmax, byte[] nestedCodes,
                         float[] nestedAbsmax, float offset) {
    public static final int NESTED_BLOCKSIZE = 256;

    public boolean nested() {
        return nestedCodes != null;
    }

    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public int blocks() {
        return (int) ((numel() + blocksize - 1) / blocksize);
    }

    /** Storage bits per parameter, counting the per-tensor constants (offset, the 16-entry map, the 256-entry nested map). */
    public double bitsPerParameter() {
        double bits = packed.length * 8.0 + 16 * 32;
        if (nested()) bits += nestedCodes.length * 8.0 + nestedAbsmax.length * 32.0 + 32 + 256 * 32;
        else bits += absmax.length * 32.0;
        return bits / numel();
    }

    /** Bytes this state occupies (what the quantized base really costs in memory). */
    public long bytes() {
        long b = packed.length;
        b += nested() ? nestedCodes.length + 4L * nestedAbsmax.length + 4 : 4L * absmax.length;
        return b;
    }
}
