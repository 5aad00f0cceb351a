package dev.tune4j;

import static org.assertj.core.api.Assertions.assertThat;

/** Element-wise closeness with a message that says where the largest difference is. */
public final class TensorAssert {
    private TensorAssert() {}


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
