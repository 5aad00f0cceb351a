package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.CliRun;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code bench serve} drives the engine at each concurrency and adapter mix and reports throughput and latency percentiles. */
class BenchServeTest {
    @Test
    void reportsEveryMixAndConcurrency() throws Exception {
        var r = CliRun.of("bench", "serve", "--shape", "tiny", "--concurrency", "1,4", "--adapters", "base,mixed8", "--seq-len", "6", "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = new ObjectMapper().readTree(r.out().strip());
        assertThat(j.get("bench").asText()).isEqualTo("serve");
        assertThat(j.get("runs")).hasSize(4);
        for (JsonNode run : j.get("runs")) {
            assertThat(run.get("requests").asInt()).isEqualTo(2 * run.get("concurrency").asInt());
            assertThat(run.get("tokens_per_s").asDouble()).isPositive();
            assertThat(run.get("ttft_p99_ms").asDouble()).isGreaterThanOrEqualTo(run.get("ttft_p50_ms").asDouble());
            assertThat(run.get("tpot_p50_ms").asDouble()).isNotNegative(); // rounded to 0.1 ms: a fast machine may show 0.0
        }
        assertThat(j.get("runs").get(3).get("adapters").asText()).isEqualTo("mixed8");
    }

    @Test
    void badConcurrencyIsNamed() {
        var r = CliRun.of("bench", "serve", "--shape", "tiny", "--concurrency", "0");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--concurrency").doesNotContain("\tat ");
    }
}
