package dev.tune4j.quant;

import dev.tune4j.hf.UserError;
/**
 * Blockwise 4-bit quantization with bitsandbytes' numerics (the PyTorch default backend: IEEE float32): absmax per block,
 * y = x · (1/absmax) clamped to [−1, 1], the code whose value is nearest (strict {@code >} on midpoints, so ties go to
 * the lower code), two codes per byte with the first element in the high nibble. Double quantization stores absmax − mean
 * on the signed 8-bit dynamic map in blocks of 256.
 */
public final class Quantizer {
    private Quantizer() {}

    static final float[] NF4_MID = Codebooks.midpoints(Codebooks.NF4);
    /** FP4 magnitude thresholds (midpoints of the sorted magnitudes) and the 3-bit index of each magnitude bucket. */
    static final float[] FP4_MID = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
    static final int[] FP4_LOW = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
    static final float[] SIGNED_DYN = Codebooks.dynamicMap(true);
    static final float[] SIGNED_DYN_MID = Codebooks.midpoints(SIGNED_DYN);

    public static void checkBlocksize(int blocksize) {
        if (blocksize < 32 || blocksize > 4096 || Integer.bitCount(blocksize) != 1)
            throw new UserError("blocksize must be a power of two in [32, 4096], found " + blocksize);
    }

    public static QuantState quantize(float[] x, long[] shape, String quantType, int blocksize, boolean doubleQuant) {
        checkBlocksize(blocksize);
        if (!quantType.equals("nf4") && !quantType.equals("fp4")) throw new UserError("quant type must be nf4 or fp4, found '" + quantType + "'");
        int n = x.length, blocks = (n + blocksize - 1) / blocksize;
        float[] absmax = new float[blocks];
        byte[] packed = new byte[(n + 1) / 2];
        for (int b = 0; b < blocks; b++) {
            int from = b * blocksize, to = Math.min(n, from + blocksize);
            float amax = 0;
            for (int i = from; i < to; i++) amax = Math.max(amax, Math.abs(x[i]));
            absmax[b] = amax;
            float inv = amax > 0 ? 1f / amax : 0f; // an all-zero block scales to 0 → the zero code
            for (int i = from; i < to; i++) {
                float y = Math.max(-1f, Math.min(1f, x[i] * inv));
                int q = quantType.equals("nf4") ? countBelow(NF4_MID, y) : fp4(y);
                packed[i / 2] |= (byte) ((i % 2 == 0) ? q << 4 : q);
            }
        }
        if (!doubleQuant) return new QuantState(quantType, blocksize, shape.clone(), packed, absmax, null, null, 0f);
        float offset = mean(absmax);
        int nb2 = (blocks + QuantState.NESTED_BLOCKSIZE - 1) / QuantState.NESTED_BLOCKSIZE;
        byte[] codes = new byte[blocks];
        float[] absmax2 = new float[nb2];
        for (int b = 0; b < nb2; b++) {
            int from = b * QuantState.NESTED_BLOCKSIZE, to = Math.min(blocks, from + QuantState.NESTED_BLOCKSIZE);
            float amax = 0;
            for (int i = from; i < to; i++) amax = Math.max(amax, Math.abs(absmax[i] - offset));
            absmax2[b] = amax;
            float inv = amax > 0 ? 1f / amax : 0f;
            for (int i = from; i < to; i++) {
                float y = Math.max(-1f, Math.min(1f, (absmax[i] - offset) * inv));
                codes[i] = (byte) countBelow(SIGNED_DYN_MID, y);
            }
        }
        return new QuantState(quantType, blocksize, shape.clone(), packed, null, codes, absmax2, offset);
    }

    /** Number of thresholds strictly below y = the index of the nearest code (ties to the lower code). */
    static int countBelow(float[] mid, float y) {
        int lo = 0, hi = mid.length; // first index with mid[i] >= y
        while (lo < hi) {
            int m = (lo + hi) >>> 1;
            if (mid[m] < y) lo = m + 1;
            else hi = m;
        }
        return lo;
    }

    static int fp4(float y) {
        int sign = y < 0 ? 8 : 0;
        return sign | FP4_LOW[countBelow(FP4_MID, Math.abs(y))];
    }

    /** float32 mean accumulated in order (PyTorch's pairwise reduction may differ in the last ulp). */
    static float mean(float[] v) {
        double s = 0;
        for (float x : v) s += x;
        return (float) (s / v.length);
    }

    /** The absmax of each block (reconstructed from the nested codes when double-quantized): dyn[q]·absmax2 + offset. */
    public static float[] absmax(QuantState s) {
        if (!s.nested()) return s.absmax();
        float[] a = new float[s.nestedCodes().length];
        for (int i = 0; i < a.length; i++)
            a[i] = SIGNED_DYN[s.nestedCodes()[i] & 0xff] * s.nestedAbsmax()[i / QuantState.NESTED_BLOCKSIZE] + s.offset();
        return a;
    }

    /** w = code[q] · absmax, in float32. */
    public static float[] dequantize(QuantState s) {
        float[] table = s.quantType().equals("nf4") ? Codebooks.NF4 : Codebooks.FP4;
        float[] absmax = absmax(s);
        int n = (int) s.numel();
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            int q = (i % 2 == 0) ? (s.packed()[i / 2] >> 4) & 0xf : s.packed()[i / 2] & 0xf;
            out[i] = table[q] * absmax[i / s.blocksize()];
        }
        return out;
    }

    /** The 4-bit code of element i (for tests and checks). */
    public static int code(QuantState s, int i) {
        return (i % 2 == 0) ? (s.packed()[i / 2] >> 4) & 0xf : s.packed()[i / 2] & 0xf;
    }
}
