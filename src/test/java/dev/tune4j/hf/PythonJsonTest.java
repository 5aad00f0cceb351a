package dev.tune4j.hf;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** Python's repr(float) and json.dumps(indent=2, sort_keys=True), as PEFT and bitsandbytes write them. */
class PythonJsonTest {
    @Test
    void floatReprMatchesPython() {
        assertThat(PythonJson.floatRepr(1.0)).isEqualTo("1.0");
        assertThat(PythonJson.floatRepr(123.0)).isEqualTo("123.0");
        assertThat(PythonJson.floatRepr(0.1)).isEqualTo("0.1");
        assertThat(PythonJson.floatRepr(0.0001)).isEqualTo("0.0001");
        assertThat(PythonJson.floatRepr(1e-05)).isEqualTo("1e-05");
        assertThat(PythonJson.floatRepr(1.5e-07)).isEqualTo("1.5e-07");
        assertThat(PythonJson.floatRepr(1e16)).isEqualTo("1e+16");
        assertThat(PythonJson.floatRepr(-2.5)).isEqualTo("-2.5");
        assertThat(PythonJson.floatRepr((double) 0.012345679f)).isEqualTo("0.012345679104328156"); // Python: float(np.float32(0.012345679))
        assertThat(PythonJson.floatRepr(1234567890123456.0)).isEqualTo("1234567890123456.0");
    }

    @Test
    void dumpsLikePython() {
        assertThat(PythonJson.dumps(Map.of("b", List.of(1, 2), "a", Map.of(), "c", 0.5)))
                .isEqualTo("{\n  \"a\": {},\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": 0.5\n}");
    }
}
