package dev.tune4j.serve;

import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Prometheus text for /metrics, with vLLM's metric names under a {@code tune4j:} prefix. Latencies are taken from the
 * engine's listener callbacks: time to first token = submission to the engine → first text delta; time per output token = (finish − first
 * delta) / (completion tokens − 1), one observation per request.
 */
final class Metrics {
    /** A cumulative histogram with fixed upper bounds (seconds). */
    static final class Histogram {
        final double[] bounds;
        final long[] counts;
        long count;
        double sum;

        Histogram(double... bounds) {
            this.bounds = bounds;
            this.counts = new long[bounds.length];
        }

        synchronized void observe(double v) {
            for (int i = 0; i < bounds.length; i++) if (v <= bounds[i]) counts[i]++;
            count++;
            sum += v;
        }

        synchronized void write(StringBuilder out, String name, String help) {
            out.append("# HELP ").append(name).append(' ').append(help).append("\n# TYPE ").append(name).append(" histogram\n");
            for (int i = 0; i < bounds.length; i++) out.append(name).append("_bucket{le=\"").append(bounds[i]).append("\"} ").append(counts[i]).append('\n');
            out.append(name).append("_bucket{le=\"+Inf\"} ").append(count).append('\n');
            out.append(name).append("_sum ").append(String.format(Locale.ROOT, "%.6f", sum)).append('\n');
            out.append(name).append("_count ").append(count).append('\n');
        }
    }

    final Histogram timeToFirstToken = new Histogram(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80);
    final Histogram timePerOutputToken = new Histogram(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5);
    final LongAdder promptTokens = new LongAdder(), generationTokens = new LongAdder();
    private final Map<String, LongAdder> finished = new ConcurrentHashMap<>(); // finished_reason → requests
    private final Map<Integer, LongAdder> responses = new ConcurrentHashMap<>(); // HTTP status → responses

    void finished(String reason, int prompt, int completion) {
        finished.computeIfAbsent(reason, k -> new LongAdder()).increment();
        promptTokens.add(prompt);
        generationTokens.add(completion);
    }

    void response(int status) {
        responses.computeIfAbsent(status, k -> new LongAdder()).increment();
    }

    /** The exposition text; running, waiting and loaded adapters come from the engine at the time of the scrape. */
    String render(int running, int waiting, int loadedAdapters, int registeredAdapters) {
        var out = new StringBuilder();
        gauge(out, "tune4j:num_requests_running", "Sequences in the engine's running batch.", running);
        gauge(out, "tune4j:num_requests_waiting", "Requests queued for a batch slot.", waiting);
        gauge(out, "tune4j:lora_adapters_loaded", "Adapters loaded in the engine's host cache.", loadedAdapters);
        gauge(out, "tune4j:lora_adapters_registered", "Adapters the server knows by name (listed by /v1/models).", registeredAdapters);
        counter(out, "tune4j:prompt_tokens_total", "Prompt tokens of finished requests.", promptTokens.sum());
        counter(out, "tune4j:generation_tokens_total", "Generated tokens of finished requests.", generationTokens.sum());
        out.append("# HELP tune4j:request_success_total Finished generation requests by finish reason.\n# TYPE tune4j:request_success_total counter\n");
        new TreeMap<>(finished).forEach((k, v) -> out.append("tune4j:request_success_total{finished_reason=\"").append(k).append("\"} ").append(v.sum()).append('\n'));
        out.append("# HELP tune4j:http_responses_total HTTP responses by status code.\n# TYPE tune4j:http_responses_total counter\n");
        new TreeMap<>(responses).forEach((k, v) -> out.append("tune4j:http_responses_total{code=\"").append(k).append("\"} ").append(v.sum()).append('\n'));
        timeToFirstToken.write(out, "tune4j:time_to_first_token_seconds", "Time from submission to the engine to the first text delta.");
        timePerOutputToken.write(out, "tune4j:time_per_output_token_seconds", "Mean time per output token after the first, per request.");
        return out.toString();
    }

    private static void gauge(StringBuilder out, String name, String help, long v) {
        out.append("# HELP ").append(name).append(' ').append(help).append("\n# TYPE ").append(name).append(" gauge\n").append(name).append(' ').append(v).append('\n');
    }

    private static void counter(StringBuilder out, String name, String help, long v) {
        out.append("# HELP ").append(name).append(' ').append(help).append("\n# TYPE ").append(name).append(" counter\n").append(name).append(' ').append(v).append('\n');
    }
}
