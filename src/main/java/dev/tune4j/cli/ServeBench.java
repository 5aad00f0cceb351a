package dev.tune4j.cli;

import dev.tune4j.generate.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.global.torch;

import java.util.*;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code bench serve}: the engine in process (no HTTP), as a server drives it. For each adapter mix and concurrency,
 * {@code 2 × concurrency} requests of a 16-token random prompt and {@code tokens} new tokens (end-of-sequence ignored) are
 * submitted at once to an engine with {@code concurrency} slots: decode throughput over the wave, time to first token and
 * time per output token per request (p50, p99). Adapters are random LoRA r=16 all-linear made in memory.
 */
final class ServeBench {
    private ServeBench() {}

    enum Mix {base, one, mixed8}

    static List<Map<String, Object>> run(LlamaModel m, List<Integer> concurrencies, List<Mix> mixes, int tokens, boolean quiet) {
        var rows = new ArrayList<Map<String, Object>>();
        var rnd = new Random(0);
        for (Mix mix : mixes)
            for (int c : concurrencies) {
                var row = wave(m, mix, c, tokens, rnd);
                rows.add(row);
                if (!quiet) System.err.printf("%-7s concurrency %2d: %8.1f tokens/s, TTFT p50 %7.1f ms, TPOT p50 %6.1f ms%n", mix, c,
                        (double) row.get("tokens_per_s"), (double) row.get("ttft_p50_ms"), (double) row.get("tpot_p50_ms"));
            }
        return rows;
    }

    private static Map<String, Object> wave(LlamaModel m, Mix mix, int concurrency, int tokens, Random rnd) {
        int n = 2 * concurrency;
        long[] ttft = new long[n], tpot = new long[n];
        int[] generated = new int[n];
        var done = new CountDownLatch(n);
        long start;
        try (Engine e = Engine.start(m, null, ServeBench::randomAdapter, new Engine.Options(concurrency, 16 + tokens + 1, n, 8, 8))) {
            e.generateAll(List.of(request(mix, 0, rnd, m, tokens))); // warm-up: adapters attached, allocator pools
            if (mix == Mix.mixed8) for (int i = 1; i < 8; i++) e.generate(request(mix, i, rnd, m, 2));
            start = System.nanoTime();
            for (int i = 0; i < n; i++) {
                int at = i;
                long submitted = System.nanoTime();
                e.submit(request(mix, i, rnd, m, tokens), new Listener() {
                    long first;

                    public void onDelta(String text, long[] ids) {
                        if (first == 0 && ids.length > 0) first = System.nanoTime();
                    }

                    public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                        long end = System.nanoTime();
                        ttft[at] = first - submitted;
                        generated[at] = usage == null ? 0 : usage.completionTokens();
                        tpot[at] = generated[at] > 1 ? (end - first) / (generated[at] - 1) : 0;
                        done.countDown();
                    }
                });
            }
            try {
                if (!done.await(1, TimeUnit.HOURS)) throw new IllegalStateException("bench serve: requests did not finish within an hour");
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(ex);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        var row = new LinkedHashMap<String, Object>();
        row.put("adapters", mix.name());
        row.put("concurrency", concurrency);
        row.put("requests", n);
        row.put("new_tokens", tokens);
        row.put("tokens_per_s", round(Arrays.stream(generated).sum() / seconds));
        row.put("ttft_p50_ms", round(percentile(ttft, 0.5) / 1e6));
        row.put("ttft_p99_ms", round(percentile(ttft, 0.99) / 1e6));
        row.put("tpot_p50_ms", round(percentile(tpot, 0.5) / 1e6));
        row.put("tpot_p99_ms", round(percentile(tpot, 0.99) / 1e6));
        return row;
    }

    private static Request request(Mix mix, int i, Random rnd, LlamaModel m, int tokens) {
        long[] prompt = new long[16];
        for (int k = 0; k < prompt.length; k++) prompt[k] = rnd.nextInt(m.config.vocabSize());
        String adapter = switch (mix) {
            case base -> null;
            case one -> "a0";
            case mixed8 -> "a" + (i % 8);
        };
        return new Request(adapter, prompt, new Sampling(tokens, 0, 1, 0, null, List.of(), 1, 0, 0, true, List.of()));
    }

    /** A random LoRA r=16 on every linear, with B non-zero (a trained adapter's cost and effect). */
    private static void randomAdapter(LlamaModel m, String name) {
        var a = LoraAdapter.create(m, new LoraConfig(16, 32, 0, List.of("all-linear"), false), name.hashCode(), "bench", name);
        try (var scope = new org.bytedeco.javacpp.PointerScope(); NoGradGuard ng = new NoGradGuard()) { // the random B is a temporary: freed here, not by the GC
            for (var e : a.namedParameters().entrySet())
                if (e.getKey().contains("lora_B")) e.getValue().copy_(torch.randn(e.getValue().sizes().vec().get()).mul(new Scalar(0.01)));
        }
    }

    static double percentile(long[] v, double q) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s[Math.min(s.length - 1, (int) Math.ceil(q * s.length) - 1)];
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
