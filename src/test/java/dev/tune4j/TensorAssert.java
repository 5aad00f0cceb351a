package dev.tune4j;

import static org.assertj.core.api.Assertions.assertThat;

/** Element-wise closeness with a message that says where the largest difference is. */
public final class TensorAssert {
    private TensorAssert() {}

    public static double maxAbsDiff(float[] a, float[] b) {
        assertThat(a.length).as("element count").isEqualTo(b.length);
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs((double) a[i] - b[i]));
        return m;
    }

    public static void assertClose(String what, float[] actual, float[] expected, double tol) {
        assertThat(actual.length).as(what + " element count").isEqualTo(expected.length);
        double m = 0;
        int at = -1;
        for (int i = 0; i < actual.length; i++) {
            double d = Math.abs((double) actual[i] - expected[i]);
            if (!(d <= m)) {
                m = d;
                at = i;
            }
        }
        assertThat(m).as(what + ": max |diff| at flat index " + at + (at >= 0 ? " (got " + actual[at] + ", want " + expected[at] + ")" : "")).isLessThanOrEqualTo(tol);
    }
}
