package dev.tune4j.quant;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.assertj.core.api.Assertions.*;

/** bitsandbytes' 4-bit numerics: tables, thresholds, packing, rounding, block error bounds, double quantization. */
class QuantizerTest {
    @Test
    void nf4ThresholdsAreThePublishedMidpoints() {
        float[] published = {-0.8480964f, -0.6106329f, -0.45999527f, -0.33967942f, -0.2346074f, -0.13791174f, -0.045525018f, 0.03979015f,
                0.12025525f, 0.20352125f, 0.29201376f, 0.38931254f, 0.50166345f, 0.64278692f, 0.86147845f};
        assertThat(Quantizer.NF4_MID).containsExactly(published);
        assertThat(Codebooks.NF4).hasSize(16).startsWith(-1f).endsWith(1f).contains(0f);
        assertThat(Codebooks.FP4[3]).isEqualTo(1f);
        assertThat(Codebooks.FP4[1]).isEqualTo(0.0625f / 12f);
        assertThat(Codebooks.FP4[8]).isEqualTo(-0f);
    }

    @Test
    void dynamicMapsHaveTheReferenceKeyValues() {
        float[] s = Codebooks.dynamicMap(true), u = Codebooks.dynamicMap(false);
        assertThat(s).hasSize(256);
        assertThat(s[0]).isEqualTo(-0.99296875f);
        assertThat(s[127]).isEqualTo(0f);
        assertThat(s[254]).isEqualTo(0.99296875f);
        assertThat(s[255]).isEqualTo(1f);
        assertThat(s[128]).isCloseTo(5.5e-7f, within(1e-12f));
        assertThat(s).doesNotContain(-1f);
        assertThat(u[0]).isEqualTo(0f);
        assertThat(u[1]).isCloseTo(3.25e-7f, within(1e-12f));
        assertThat(u[254]).isCloseTo(0.9964844f, within(1e-7f));
        assertThat(u[255]).isEqualTo(1f);
        for (int i = 1; i < 256; i++) assertThat(u[i]).isGreaterThan(u[i - 1]);
    }

    @Test
    void firstElementGoesInTheHighNibbleAndOddSizesPad() {
        var q = Quantizer.quantize(new float[]{1f, -1f, 0f}, new long[]{3}, "nf4", 64, false);
        assertThat(q.packed()).containsExactly((byte) 0xF0, (byte) 0x70);
        assertThat(q.absmax()).containsExactly(1f);
        assertThat(Quantizer.dequantize(q)).containsExactly(1f, -1f, 0f);
    }

    @Test
    void tiesGoToTheLowerCodeAndZeroBlocksToTheZeroCode() {
        float mid = Quantizer.NF4_MID[8]; // between codes 8 and 9
        var q = Quantizer.quantize(new float[]{1f, mid, Math.nextUp(mid)}, new long[]{3}, "nf4", 64, false);
        assertThat(Quantizer.code(q, 1)).isEqualTo(8);
        assertThat(Quantizer.code(q, 2)).isEqualTo(9);
        var z = Quantizer.quantize(new float[64], new long[]{64}, "nf4", 64, false);
        for (int i = 0; i < 64; i++) assertThat(Quantizer.code(z, i)).isEqualTo(7);
        assertThat(Quantizer.dequantize(z)).containsOnly(0f);
    }

    @Test
    void roundTripErrorStaysWithinHalfTheLargestGapPerBlock() {
        var rnd = new Random(7);
        for (String type : new String[]{"nf4", "fp4"}) {
            for (int n : new int[]{1, 63, 64, 100, 1000, 4097}) {
                for (int bs : new int[]{32, 64, 256}) {
                    float[] x = new float[n];
                    for (int i = 0; i < n; i++) x[i] = (float) (rnd.nextGaussian() * 0.02);
                    var q = Quantizer.quantize(x, new long[]{n}, type, bs, false);
                    assertThat(q.absmax()).hasSize((n + bs - 1) / bs);
                    float[] y = Quantizer.dequantize(q);
                    double halfGap = (type.equals("nf4") ? 1 - 0.6961928009986877 : 1 - 8 / 12.0) / 2;
                    for (int i = 0; i < n; i++)
                        assertThat((double) Math.abs(y[i] - x[i])).as(type + " n=" + n + " bs=" + bs + " i=" + i)
                                .isLessThanOrEqualTo(halfGap * q.absmax()[i / bs] * (1 + 1e-6) + 1e-12);
                    // the block maximum is exact: ±absmax maps to ±1
                    int arg = 0;
                    for (int i = 1; i < Math.min(n, bs); i++) if (Math.abs(x[i]) > Math.abs(x[arg])) arg = i;
                    if (x[arg] > 0 || type.equals("nf4")) assertThat(y[arg]).isEqualTo(x[arg]);
                }
            }
        }
    }

    @Test
    void doubleQuantizationReconstructsAbsmaxAndCosts4127BitsPerParameter() {
        var rnd = new Random(3);
        int rows = 1536, cols = 576;
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.02);
        var plain = Quantizer.quantize(w, new long[]{rows, cols}, "nf4", 64, false);
        var dq = Quantizer.quantize(w, new long[]{rows, cols}, "nf4", 64, true);
        assertThat(dq.nested()).isTrue();
        assertThat(dq.packed()).as("the 4-bit codes do not depend on DQ").containsExactly(plain.packed());
        assertThat(dq.nestedAbsmax()).hasSize((rows * cols / 64 + 255) / 256);
        float[] exact = plain.absmax(), rebuilt = Quantizer.absmax(dq);
        float maxDev = 0;
        for (float a : exact) maxDev = Math.max(maxDev, Math.abs(a - dq.offset()));
        for (int i = 0; i < exact.length; i++) assertThat(Math.abs(rebuilt[i] - exact[i])).isLessThanOrEqualTo(0.008f * maxDev);
        assertThat(plain.bitsPerParameter()).isCloseTo(4.5, within(0.001));
        // bitsandbytes' layout for this tensor: 4-bit codes, 16-entry map, uint8 per block, fp32 per 256 blocks, offset, 256-entry nested map
        double n = w.length, blocks = n / 64;
        double expected = (4 * n + 16 * 32 + 8 * blocks + 32 * Math.ceil(blocks / 256) + 32 + 256 * 32) / n;
        assertThat(dq.bitsPerParameter()).isCloseTo(expected, within(1e-9)).isBetween(4.127, 4.14);
        assertThat(dq.bytes() * 8.0 / w.length).isCloseTo(4.127, within(0.001));
    }

    @Test
    void badInputsAreRefused() {
        assertThatThrownBy(() -> Quantizer.quantize(new float[8], new long[]{8}, "nf4", 48, false)).hasMessageContaining("power of two");
        assertThatThrownBy(() -> Quantizer.quantize(new float[8], new long[]{8}, "nf4", 8192, false)).hasMessageContaining("[32, 4096]");
        assertThatThrownBy(() -> Quantizer.quantize(new float[8], new long[]{8}, "int4", 64, false)).hasMessageContaining("nf4 or fp4");
    }
}
