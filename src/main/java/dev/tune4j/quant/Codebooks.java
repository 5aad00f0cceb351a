package dev.tune4j.quant;

/** The code tables of bitsandbytes, value for value (../shared/reference/memory-and-quantization.md §1.1, §1.2, §2.3). */
public final class Codebooks {
    private Codebooks() {}

    /** NF4: code = table index (not a float encoding); 7 negative values, 0, 8 positive values. */
    public static final float[] NF4 = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
            -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
            0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

    /** FP4 (1 sign, 2 exponent, 1 mantissa bit): bit 3 is the sign, the low 3 bits index the magnitudes; raw values / 12. */
    public static final float[] FP4 = fp4();

    private static float[] fp4() {
        float[] raw = {0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f};
        float[] t = new float[16];
        for (int i = 0; i < 8; i++) {
            t[i] = raw[i] / 12f;
            t[8 + i] = -raw[i] / 12f;
        }
        return t;
    }

    /**
     * bitsandbytes' {@code create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)}: for decade i, the midpoints of
     * a float32 linspace(0.1, 1) of 2^i+1 (signed) or 2^(i+1)+1 (unsigned) points, times 10^(i−6) (and negated when
     * signed); plus 0 and 1; sorted. 256 float32 values.
     */
    public static float[] dynamicMap(boolean signed) {
        var data = new java.util.ArrayList<Float>();
        for (int i = 0; i < 7; i++) {
            int n = signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
            float[] b = linspace(0.1f, 1f, n);
            float scale = (float) Math.pow(10, i - 6);
            for (int k = 0; k + 1 < n; k++) {
                float mean = (b[k] + b[k + 1]) / 2.0f;
                data.add(scale * mean);
                if (signed) data.add(-scale * mean);
            }
        }
        data.add(0f);
        data.add(1.0f);
        while (data.size() < 256) data.add(0f);
        float[] out = new float[256];
        for (int i = 0; i < 256; i++) out[i] = data.get(i);
        java.util.Arrays.sort(out);
        return out;
    }

    /** torch.linspace for float32 on the CPU: the first half counts up from start, the second half down from end. */
    static float[] linspace(float start, float end, int steps) {
        float[] r = new float[steps];
        float step = (end - start) / (float) (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) r[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        return r;
    }

    /** Midpoints between adjacent values of a sorted table, in float32: the rounding thresholds. */
    static float[] midpoints(float[] sorted) {
        float[] m = new float[sorted.length - 1];
        for (int i = 0; i < m.length; i++) m[i] = (sorted[i] + sorted[i + 1]) / 2f;
        return m;
    }
}
