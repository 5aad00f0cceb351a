package dev.tune4j.generate;

import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import dev.tune4j.text.Tokenizer;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.*;
import java.util.function.Function;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Issue 13 item 1: continuous batching with per-row adapters gives each request exactly what it gets alone. */
class EngineTest {
    static LlamaModel model;
    static Tokenizer tok;
    static Function<long[], String> detok;
    static final List<String> attaches = Collections.synchronizedList(new ArrayList<>());

    /** Adapters made on demand, the same weights for the same name (seeded), with B non-zero so that they change the output. */
    static final AdapterSource RANDOM = (m, name) -> {
        attaches.add(name);
        var a = LoraAdapter.create(m, new LoraConfig(4, 8, 0, List.of("all-linear"), false), name.hashCode(), "stories260k", name);
        torch.manual_seed(name.hashCode());
        try (var scope = new org.bytedeco.javacpp.PointerScope(); NoGradGuard ng = new NoGradGuard()) { // the random B is a temporary: freed here, not by the GC
            for (var e : a.namedParameters().entrySet())
                if (e.getKey().contains("lora_B")) e.getValue().copy_(torch.randn(e.getValue().sizes().vec().get()).mul(new Scalar(0.3)));
        }
    };

    @BeforeAll
    static void load() throws Exception {
        Path dir = EmbeddedModel.stories260k();
        try (ModelFolder f = ModelFolder.open(dir)) {
            model = LlamaModel.load(f, Compute.cpu());
        }
        tok = Tokenizer.load(dir);
        detok = ids -> tok.decode(ids, true);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static Request req(String adapter, String prompt, int max) {
        return new Request(adapter, tok.encode(prompt, true), Sampling.greedy(max, List.of(2)));
    }

    static Engine engine(int seqs, int queued, int cpuLoras) {
        return Engine.start(model, detok, RANDOM, new Engine.Options(seqs, 512, queued, cpuLoras, 8));
    }

    @Test
    void mixedAdapterBatchesGiveEveryRequestWhatItGetsAlone() {
        var requests = List.of(req(null, "Once upon a time", 30), req("a", "Lily had a", 24), req("b", "The dog", 40),
                req("a", "One day, Tom went to the park and", 18), req(null, "She", 35), req("b", "Once upon a time", 30), req("c", "Ben", 20));
        List<Result> alone = new ArrayList<>();
        try (Engine e = engine(1, 16, 4)) { // one slot: every request decodes alone
            for (Request r : requests) alone.add(e.generate(r));
        }
        try (Engine e = engine(8, 16, 4)) {
            var together = e.generateAll(requests);
            for (int i = 0; i < requests.size(); i++) {
                assertThat(together.get(i).tokenIds()).as("request %d (adapter %s)", i, requests.get(i).adapter()).containsExactly(alone.get(i).tokenIds());
                assertThat(together.get(i).text()).isEqualTo(alone.get(i).text());
                assertThat(together.get(i).usage().promptTokens()).isEqualTo(requests.get(i).promptIds().length);
            }
        }
        assertThat(alone.get(0).tokenIds()).as("the adapters change the output").isNotEqualTo(alone.get(5).tokenIds());
    }

    @Test
    void requestsJoiningMidwayMatchToo() throws Exception {
        var first = List.of(req("a", "Once upon a time", 60), req(null, "Lily", 60));
        var later = List.of(req("b", "Tom and Sue", 25), req("a", "The sun", 25));
        List<Result> alone = new ArrayList<>();
        try (Engine e = engine(1, 16, 4)) {
            for (Request r : first) alone.add(e.generate(r));
            for (Request r : later) alone.add(e.generate(r));
        }
        try (Engine e = engine(8, 16, 4)) {
            var started = new CountDownLatch(2);
            var results = new ArrayList<CompletableFuture<List<Result>>>();
            for (Request r : first) {
                var out = new CompletableFuture<List<Result>>();
                var ids = new ArrayList<Long>();
                e.submit(r, new Listener() {
                    public void onDelta(String text, long[] tokenIds) {
                        for (long id : tokenIds) ids.add(id);
                        if (ids.size() == 5) started.countDown();
                    }

                    public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                        out.complete(List.of(new Result(ids.stream().mapToLong(Long::longValue).toArray(), "", reason, usage)));
                    }
                });
                results.add(out);
            }
            assertThat(started.await(60, TimeUnit.SECONDS)).isTrue();
            var joined = e.generateAll(later); // join while the first two are mid-way
            for (int i = 0; i < 2; i++) assertThat(results.get(i).get(60, TimeUnit.SECONDS).getFirst().tokenIds()).containsExactly(alone.get(i).tokenIds());
            for (int i = 0; i < 2; i++) assertThat(joined.get(i).tokenIds()).containsExactly(alone.get(2 + i).tokenIds());
        }
    }

    @Test
    void theEngineAndTheCliPathAgree() throws Exception {
        long[] prompt = tok.encode("Once upon a time", true);
        Result viaEngine;
        try (Engine e = engine(4, 4, 4)) {
            viaEngine = e.generate(new Request(null, prompt, Sampling.greedy(40, List.of(2))));
        }
        var viaGenerator = Generator.generate(model, prompt, GenerationConfig.greedy(40).withEos(List.of(2)), detok, null);
        assertThat(viaEngine.tokenIds()).containsExactly(viaGenerator.tokens());
        assertThat(viaEngine.text()).isEqualTo(viaGenerator.text());
    }

    @Test
    void aFourBitBaseServesWithAdaptersAsTheCliPathDecodesIt() throws Exception {
        try (ModelFolder f = ModelFolder.open(EmbeddedModel.stories260k()); LlamaModel q = LlamaModel.load(f, Compute.cpu())) {
            dev.tune4j.quant.FourBit.quantize(q, "nf4", 64, true); // a bitsandbytes-style NF4 base
            long[] prompt = tok.encode("Once upon a time", true);
            var viaGenerator = Generator.generate(q, prompt, GenerationConfig.greedy(30).withEos(List.of(2)), detok, null);
            List<Result> got;
            try (Engine e = Engine.start(q, detok, RANDOM, new Engine.Options(4, 512, 4, 4, 4))) {
                got = e.generateAll(List.of(new Request(null, prompt, Sampling.greedy(30, List.of(2))), new Request("a", prompt, Sampling.greedy(30, List.of(2)))));
            }
            assertThat(got.get(0).tokenIds()).containsExactly(viaGenerator.tokens());
            assertThat(got.get(1).tokenIds()).as("an adapter over the 4-bit base").isNotEqualTo(viaGenerator.tokens());
        }
    }

    @Test
    void batchedGenerationOnTheCallersThreadEqualsOneAtATime() {
        var prompts = List.of(tok.encode("Once upon a time", true), tok.encode("Lily", true), tok.encode("The big dog ran", true),
                tok.encode("Tom", true), tok.encode("One day", true));
        var cfg = GenerationConfig.greedy(25).withEos(List.of(2));
        var batched = Generator.generateAll(model, prompts, cfg, detok, null, 3); // 3 at a time: the others join as rows finish
        for (int i = 0; i < prompts.size(); i++) {
            var alone = Generator.generate(model, prompts.get(i), cfg, detok, null);
            assertThat(batched.get(i).tokens()).as("prompt %d", i).containsExactly(alone.tokens());
            assertThat(batched.get(i).text()).isEqualTo(alone.text());
            assertThat(batched.get(i).reason()).isEqualTo(alone.reason());
        }
    }

    @Test
    void segmentAndGroupedRoutingComputeTheSameUpdates() throws Exception {
        for (String a : List.of("g1", "g2", "g3")) RANDOM.attach(model, a);
        long[][] row = new long[4][6];
        for (int r = 0; r < 4; r++) for (int t = 0; t < 6; t++) row[r][t] = 1 + (r * 6 + t) * 37 % 500;
        try (var scope = new org.bytedeco.javacpp.PointerScope(); var ng = new NoGradGuard()) {
            // sorted by adapter, as the engine sorts rows: each adapter adds to a view of its rows
            float[] sorted = logits(new long[][]{row[0], row[1], row[2], row[3]}, new String[]{null, "g1", "g1", "g3"});
            int per = sorted.length / 4;
            // interleaved rows: the grouped passes (an index_select and index_add per adapter)
            float[] mixed = logits(new long[][]{row[1], row[0], row[3], row[2]}, new String[]{"g1", null, "g3", "g1"});
            int[] from = {1, 0, 3, 2};
            for (int r = 0; r < 4; r++)
                for (int i = 0; i < per; i++)
                    assertThat((double) mixed[r * per + i]).as("row %d", r).isCloseTo(sorted[from[r] * per + i], org.assertj.core.api.Assertions.within(1e-4));
            float[] base = logits(new long[][]{row[0], row[1], row[2], row[3]}, new String[]{null, null, null, null});
            assertThat(java.util.Arrays.copyOfRange(base, per, 2 * per)).as("the adapters change the routed rows").isNotEqualTo(java.util.Arrays.copyOfRange(sorted, per, 2 * per));
        } finally {
            model.routing.clear();
            for (String a : List.of("g1", "g2", "g3")) RANDOM.detach(model, a);
        }
    }

    static float[] logits(long[][] rows, String[] adapters) {
        long[] ids = java.util.Arrays.stream(rows).flatMapToLong(java.util.Arrays::stream).toArray();
        model.routing.set(adapters);
        return Tensors.toFloats(model.logits(Tensors.longs(ids, rows.length, rows[0].length), null, null));
    }

    @Test
    void deltasConcatenateToTheTextAndAStopStringSpanningTokensCutsIt() throws Exception {
        try (Engine e = engine(4, 4, 4)) {
            Result free = e.generate(req(null, "Once upon a time", 60));
            String text = free.text();
            String stop = text.substring(10, 16); // most likely across a token boundary; the text is cut before it anyway
            var deltas = new StringBuilder();
            var done = new CompletableFuture<FinishReason>();
            var r = new Request(null, tok.encode("Once upon a time", true), new Sampling(60, 0, 1, 0, null, List.of(stop), 1, 0, 0, false, List.of(2)));
            e.submit(r, new Listener() {
                public void onDelta(String t, long[] ids) {
                    deltas.append(t);
                }

                public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                    done.complete(reason);
                }
            });
            assertThat(done.get(60, TimeUnit.SECONDS)).isEqualTo(FinishReason.STOP);
            assertThat(deltas.toString()).isEqualTo(text.substring(0, text.indexOf(stop)));
        }
    }

    @Test
    void theSameSeedGivesTheSameSample() {
        try (Engine e = engine(4, 4, 4)) {
            long[] p = tok.encode("Once upon a time", true);
            var s1 = new Sampling(40, 0.9, 0.95, 40, 7L, List.of(), 1.1, 0.2, 0.1, true, List.of(2));
            var s2 = new Sampling(40, 0.9, 0.95, 40, 8L, List.of(), 1.1, 0.2, 0.1, true, List.of(2));
            var got = e.generateAll(List.of(new Request(null, p, s1), new Request(null, p, s1), new Request(null, p, s2)));
            assertThat(got.get(0).tokenIds()).hasSize(40).containsExactly(got.get(1).tokenIds());
            assertThat(got.get(2).tokenIds()).isNotEqualTo(got.get(0).tokenIds());
        }
    }

    @Test
    void cancellingFreesTheSlotAndFinishesCancelled() throws Exception {
        try (Engine e = engine(2, 2, 4)) {
            var done = new CompletableFuture<Usage>();
            var first = new CountDownLatch(1);
            Handle h = e.submit(new Request(null, tok.encode("Once", true), new Sampling(400, 0, 1, 0, null, List.of(), 1, 0, 0, true, List.of())), new Listener() {
                public void onDelta(String t, long[] ids) {
                    first.countDown();
                }

                public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                    done.complete(reason == FinishReason.CANCELLED ? usage : null);
                }
            });
            assertThat(first.await(60, TimeUnit.SECONDS)).isTrue();
            h.cancel();
            Usage u = done.get(60, TimeUnit.SECONDS);
            assertThat(u).as("finished CANCELLED").isNotNull();
            assertThat(u.completionTokens()).isLessThan(400);
            assertThat(e.generate(req(null, "Tom", 5)).finish()).isIn(FinishReason.LENGTH, FinishReason.STOP); // the slot is free again
        }
    }

    @Test
    void moreThanSlotsPlusQueueIsBusyAndCloseCancelsEverything() throws Exception {
        var reasons = new ConcurrentLinkedQueue<FinishReason>();
        Listener l = new Listener() {
            public void onDelta(String t, long[] ids) {}

            public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                reasons.add(reason);
            }
        };
        Request longOne = new Request(null, tok.encode("Once", true), new Sampling(500, 0, 1, 0, null, List.of(), 1, 0, 0, true, List.of()));
        Engine e = engine(1, 1, 4);
        e.submit(longOne, l);
        e.submit(longOne, l);
        assertThatThrownBy(() -> e.submit(longOne, l)).isInstanceOf(Engine.Busy.class);
        assertThatThrownBy(() -> e.submit(new Request(null, new long[0], Sampling.greedy(3, List.of())), l)).hasMessageContaining("at least one token");
        e.close();
        assertThat(reasons).containsExactly(FinishReason.CANCELLED, FinishReason.CANCELLED);
        assertThatThrownBy(() -> e.submit(longOne, l)).isInstanceOf(Engine.Busy.class);
    }

    @Test
    void adaptersAreCachedLeastRecentlyUsedFirstOut() {
        attaches.clear();
        try (Engine e = engine(4, 8, 2)) {
            e.generate(req("x", "Tom", 3));
            e.generate(req("y", "Tom", 3));
            e.generate(req("x", "Tom", 3)); // x is now the most recently used
            e.generate(req("z", "Tom", 3)); // evicts y
            assertThat(e.stats().loadedAdapters()).containsExactlyInAnyOrder("x", "z");
            e.generate(req("y", "Tom", 3)); // loaded again; evicts x
            assertThat(attaches).containsExactly("x", "y", "z", "y");
            e.evict("z");
            e.generate(req(null, "Tom", 2));
            assertThat(e.stats().loadedAdapters()).containsExactly("y");
        }
        assertThat(model.linears().values()).allMatch(l -> l.adapters().isEmpty()); // close detaches everything
    }

    @Test
    void nativeMemoryStaysFlatAcrossRequests() throws Exception {
        try (Engine e = engine(8, 16, 4)) {
            var batch = List.of(req(null, "Once upon a time", 20), req("a", "Lily", 20), req("b", "Tom went", 20), req(null, "The", 20));
            e.generateAll(batch); // warm-up: adapters attached, allocator pools
            Tensors.settleGarbage();
            long objects = Tensors.liveNativeObjects();
            for (int i = 0; i < 10; i++) e.generateAll(batch);
            Tensors.settleGarbage();
            assertThat(Tensors.liveNativeObjects()).as("native objects after 40 more requests").isEqualTo(objects);
        }
    }
}
