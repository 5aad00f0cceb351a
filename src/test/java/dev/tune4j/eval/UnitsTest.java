package dev.tune4j.eval;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** The report's and run log's number formatting: rounded, with units. */
class UnitsTest {
    @Test
    void measurementsKeepFourSignificantDigits() {
        assertThat(Units.number(11.949314283288043)).isEqualTo("11.95");
        assertThat(Units.number(0.0012469)).isEqualTo("0.001247");
        assertThat(Units.number(3.0)).isEqualTo("3");
        assertThat(Units.number(1234.5678)).isEqualTo("1235");
        assertThat(Units.number(-0.5)).isEqualTo("-0.5");
        assertThat(Units.number(0)).isEqualTo("0");
        assertThat(Units.number(Double.NaN)).isEqualTo("–");
        assertThat(Units.number(9.9996)).isEqualTo("10");
    }

    @Test
    void tinyAndHugeValuesGoScientific() {
        assertThat(Units.significant(2e-4, 2)).isEqualTo("2.0e-4");
        assertThat(Units.significant(1.818e-4, 2)).isEqualTo("1.8e-4");
        assertThat(Units.significant(9.96e-4, 2)).isEqualTo("1.0e-3");
        assertThat(Units.significant(3.2e7, 3)).isEqualTo("3.2e7");
    }

    @Test
    void bytesInBinaryUnits() {
        assertThat(Units.bytes(512)).isEqualTo("512 B");
        assertThat(Units.bytes(327 * 1048576.0)).isEqualTo("327 MiB");
        assertThat(Units.bytes(2.13 * 1073741824)).isEqualTo("2.13 GiB");
        assertThat(Units.bytes(10.6 * 1073741824)).isEqualTo("10.6 GiB");
        assertThat(Units.bytes(1536)).isEqualTo("1.5 KiB");
    }

    @Test
    void durationsReadLikeAClock() {
        assertThat(Units.duration(0.254)).isEqualTo("254 ms");
        assertThat(Units.duration(3.21)).isEqualTo("3.2 s");
        assertThat(Units.duration(42.4)).isEqualTo("42 s");
        assertThat(Units.duration(192)).isEqualTo("3 min 12 s");
        assertThat(Units.duration(3840)).isEqualTo("1 h 04 min");
        assertThat(Units.duration(Double.NaN)).isEqualTo("–");
    }

    @Test
    void ratesCountsAndPercentages() {
        assertThat(Units.rate(372.26, "tok/s")).isEqualTo("372 tok/s");
        assertThat(Units.rate(1.254, "it/s")).isEqualTo("1.25 it/s");
        assertThat(Units.count(950)).isEqualTo("950");
        assertThat(Units.count(46_200)).isEqualTo("46.2 k");
        assertThat(Units.count(494_032_768)).isEqualTo("494 M");
        assertThat(Units.count(1_240_000_000L)).isEqualTo("1.24 B");
        assertThat(Units.percent(0.308)).isEqualTo("+30.8 %");
        assertThat(Units.percent(-0.0162)).isEqualTo("−1.62 %");
    }
}
