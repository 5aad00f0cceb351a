package dev.tune4j.tensor;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** Loading checks every weight for NaN and ±Inf natively and names the first one; finite weights are copied as they are. */
class CopyOfTest {
    static List<String> found(float[] values) {
        Compute.cpu();
        var seen = new ArrayList<String>();
        try (PointerScope s = new PointerScope(); var p = new FloatPointer(values)) {
            var t = Tensors.copyOf(p.address(), torch.ScalarType.Float, torch.ScalarType.Float, new long[]{2, values.length / 2}, (i, v) -> seen.add(i + "=" + v));
            if (seen.isEmpty()) assertThat(Tensors.toFloats(t)).containsExactly(values);
        }
        return seen;
    }

    @Test
    void theFirstNonFiniteElementIsNamedWithItsIndex() {
        assertThat(found(new float[]{1, -2, 3e38f, -3e38f})).isEmpty();
        assertThat(found(new float[]{1, 2, Float.NaN, 4})).containsExactly("2=NaN");
        assertThat(found(new float[]{1, Float.POSITIVE_INFINITY, 3, 4})).containsExactly("1=Infinity");
        assertThat(found(new float[]{1, 2, 3, Float.NEGATIVE_INFINITY})).containsExactly("3=-Infinity");
    }
}
