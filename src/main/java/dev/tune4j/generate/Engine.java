package dev.tune4j.generate;

import dev.tune4j.hf.UserError;
import dev.tune4j.model.LlamaModel;

import java.util.*;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.function.Function;

/**
 * Continuous batching over one model: a single thread owns the model; requests join between decoding steps (their
 * prompts prefilled into their own caches) and leave as soon as they finish, so a step always decodes every running
 * sequence in one batched pass, each row through its own adapter or none. Adapters come from an {@link AdapterSource} on
 * first use and stay attached in an LRU cache of {@code maxCpuLoras}; one that a running row uses is never evicted.
 *
 * <p>Usable from Java without HTTP: {@code start} it, {@code submit} requests with a {@link Listener}, {@code close} it.
 */
public final class Engine implements AutoCloseable {
    /**
     * @param maxNumSeqs  sequences decoded together (vLLM's --max-num-seqs)
     * @param maxModelLen prompt + generated tokens of one sequence at most (--max-model-len)
     * @param maxQueued   requests waiting beyond the running ones before {@link #submit} refuses with {@link Busy}
     * @param maxCpuLoras adapters kept attached (--max-cpu-loras); least recently used ones are evicted
     * @param maxLoras    distinct adapters in one forward pass (--max-loras); others wait for the next step
     */
    public record Options(int maxNumSeqs, int maxModelLen, int maxQueued, int maxCpuLoras, int maxLoras) {
        public Options {
            if (maxNumSeqs < 1 || maxModelLen < 2 || maxQueued < 0 || maxCpuLoras < 1 || maxLoras < 1)
                throw new UserError("engine options out of range: " + maxNumSeqs + " seqs, " + maxModelLen + " tokens, " + maxQueued + " queued, "
                        + maxCpuLoras + " cached and " + maxLoras + " adapters per step");
        }
    }

    public record Stats(int running, int waiting, List<String> loadedAdapters) {}

    /** More work than running slots plus the queue hold: try again later (HTTP 429). */
    public static final class Busy extends RuntimeException {
        public Busy(String message) {
            super(message);
        }
    }

    private final LlamaModel model;
    private final Decoder decoder;
    private final Function<long[], String> detokenizer;
    private final AdapterSource adapters;
    private final Options options;
    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();      // guarded by itself
    private final List<Sequence> running = new ArrayList<>();              // engine thread only
    private final LinkedHashMap<String, Boolean> attached = new LinkedHashMap<>(16, 0.75f, true); // engine thread only; access order = LRU
    private final Set<String> evictions = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private volatile Stats stats = new Stats(0, 0, List.of());
    private final java.util.concurrent.atomic.AtomicInteger inFlight = new java.util.concurrent.atomic.AtomicInteger(); // submitted, not finished
    private volatile boolean closed;
    private final Thread thread;

    private Engine(LlamaModel model, Function<long[], String> detokenizer, AdapterSource adapters, Options options) {
        this.model = model;
        this.decoder = new Decoder(model);
        this.detokenizer = detokenizer;
        this.adapters = adapters;
        this.options = options;
        this.thread = Thread.ofPlatform().name("tune4j-engine").daemon().start(this::loop);
    }

    /** Starts the engine thread, which owns the model from now on (no other thread may use it until {@link #close}). */
    public static Engine start(LlamaModel model, Function<long[], String> detokenizer, AdapterSource adapters, Options options) {
        return new Engine(model, detokenizer, adapters, options);
    }

    /** Queues a request; its listener hears every token. Busy when running + waiting is at capacity. */
    public Handle submit(Request request, Listener listener) {
        int prompt = request.promptIds().length;
        if (prompt == 0) throw new UserError("the prompt must hold at least one token");
        if (prompt + request.sampling().maxTokens() > options.maxModelLen())
            throw new UserError("the prompt's " + prompt + " tokens plus max_tokens " + request.sampling().maxTokens() + " exceed the model length " + options.maxModelLen());
        Listener counted = new Listener() { // the request leaves the engine's count when it finishes
            public void onDelta(String text, long[] tokenIds) {
                listener.onDelta(text, tokenIds);
            }

            public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                inFlight.decrementAndGet();
                listener.onFinish(reason, usage, error);
            }
        };
        var s = new Sequence(request, counted, true, detokenizer, new Sampler(request.sampling()));
        synchronized (waiting) {
            if (closed) throw new Busy("the engine is shut down");
            if (inFlight.get() >= options.maxNumSeqs() + options.maxQueued())
                throw new Busy(inFlight.get() + " requests running or waiting: at capacity (" + options.maxNumSeqs() + " running + " + options.maxQueued() + " queued)");
            inFlight.incrementAndGet();
            waiting.add(s);
            waiting.notifyAll();
        }
        return () -> s.cancelled = true;
    }

    /** Blocking convenience: waits for a slot when busy, then for the whole answer. */
    public Result generate(Request request) {
        return generateAll(List.of(request)).getFirst();
    }

    /** Submits every request (waiting for room when busy) and returns their results in order: batched generation. */
    public List<Result> generateAll(List<Request> requests) {
        var futures = new ArrayList<CompletableFuture<Result>>();
        for (Request r : requests) {
            var f = new CompletableFuture<Result>();
            var text = new StringBuilder();
            var ids = new ArrayList<Long>();
            Listener l = new Listener() {
                public void onDelta(String t, long[] tokenIds) {
                    text.append(t);
                    for (long id : tokenIds) ids.add(id);
                }

                public void onFinish(FinishReason reason, Usage usage, Throwable error) {
                    if (error != null) f.completeExceptionally(error);
                    else f.complete(new Result(ids.stream().mapToLong(Long::longValue).toArray(), text.toString(), reason, usage));
                }
            };
            while (true) {
                try {
                    submit(r, l);
                    break;
                } catch (Busy e) {
                    if (closed) throw e;
                    sleep(5);
                }
            }
            futures.add(f);
        }
        var out = new ArrayList<Result>();
        for (var f : futures) {
            try {
                out.add(f.get());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while generating", e);
            } catch (ExecutionException e) {
                throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
            }
        }
        return out;
    }

    /** Detaches an adapter once no running row uses it; later requests naming it load it again (fresh from disk). */
    public void evict(String adapter) {
        evictions.add(adapter);
        synchronized (waiting) {
            waiting.notifyAll();
        }
    }

    public Stats stats() {
        return stats;
    }

    /** Cancels waiting and running requests (their listeners get CANCELLED), stops the thread, frees the caches. Idempotent. */
    @Override
    public void close() {
        synchronized (waiting) {
            closed = true;
            waiting.notifyAll();
        }
        if (Thread.currentThread() != thread) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void loop() {
        try {
            while (!closed) {
                admit();
                evictUnused();
                publishStats();
                if (running.isEmpty()) {
                    synchronized (waiting) {
                        if (waiting.isEmpty() && !closed && evictions.isEmpty()) waitQuietly(waiting, 50);
                    }
                    continue;
                }
                try {
                    decoder.step(running);
                } catch (RuntimeException | Error e) { // a failed pass fails its rows, not the engine
                    for (Sequence s : running) s.end(FinishReason.ERROR, e);
                    running.clear();
                    continue;
                }
                Decoder.retire(running);
            }
        } finally {
            var all = new ArrayList<>(running);
            synchronized (waiting) {
                all.addAll(waiting);
                waiting.clear();
            }
            running.clear();
            for (Sequence s : all) s.end(FinishReason.CANCELLED, null);
            for (String a : new ArrayList<>(attached.keySet())) adapters.detach(model, a);
            attached.clear();
            publishStats();
        }
    }

    /** Moves waiting requests into free slots (their adapters permitting) and prefills them: they join the next step. */
    private void admit() {
        while (running.size() < options.maxNumSeqs()) {
            Sequence s;
            synchronized (waiting) {
                s = waiting.peek();
                if (s == null) return;
                if (!s.cancelled && !fits(s.request.adapter())) return; // waits for a step without so many adapters
                waiting.poll();
            }
            if (s.cancelled) {
                s.end(FinishReason.CANCELLED, null);
                continue;
            }
            try {
                attach(s.request.adapter());
                decoder.join(s, running);
            } catch (Exception | Error e) {
                if (s.finish == null) s.end(FinishReason.ERROR, e);
            }
        }
    }

    /** Whether a row with this adapter can join: within --max-loras distinct adapters, and room in the cache or something evictable. */
    private boolean fits(String adapter) {
        if (adapter == null) return true;
        var inStep = new HashSet<String>();
        for (Sequence r : running) if (r.request.adapter() != null) inStep.add(r.request.adapter());
        if (!inStep.contains(adapter) && inStep.size() >= options.maxLoras()) return false;
        return attached.containsKey(adapter) || attached.size() < options.maxCpuLoras() || attached.keySet().stream().anyMatch(a -> !inStep.contains(a));
    }

    private void attach(String adapter) throws java.io.IOException {
        if (adapter == null) return;
        if (attached.get(adapter) != null) return; // get() also marks it most recently used
        if (attached.size() >= options.maxCpuLoras()) {
            var inUse = new HashSet<String>();
            for (Sequence r : running) inUse.add(r.request.adapter());
            for (String lru : attached.keySet())
                if (!inUse.contains(lru)) {
                    detach(lru);
                    break;
                }
        }
        adapters.attach(model, adapter);
        attached.put(adapter, Boolean.TRUE);
    }

    private void detach(String adapter) {
        attached.remove(adapter);
        adapters.detach(model, adapter);
    }

    private void evictUnused() {
        if (evictions.isEmpty()) return;
        var inUse = new HashSet<String>();
        for (Sequence r : running) inUse.add(r.request.adapter());
        for (String a : List.copyOf(evictions))
            if (!inUse.contains(a)) {
                if (attached.containsKey(a)) detach(a);
                evictions.remove(a);
            }
    }

    private void publishStats() {
        int w;
        synchronized (waiting) {
            w = waiting.size();
        }
        stats = new Stats(running.size(), w, List.copyOf(attached.keySet()));
    }

    private static void waitQuietly(Object monitor, long ms) {
        try {
            monitor.wait(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the engine", e);
        }
    }
}
