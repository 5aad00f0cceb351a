package dev.tune4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.tune4j.generate.*;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.text.ChatTemplate;
import dev.tune4j.text.TemplateException;
import dev.tune4j.text.Tokenizer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An OpenAI-compatible server over one base model and its adapters (vLLM's API: /v1/models, /v1/completions,
 * /v1/chat/completions with server-sent events, /v1/load_lora_adapter and /v1/unload_lora_adapter, /health, /metrics).
 * HTTP is the JDK's own server with one virtual thread per exchange (docs/decisions/0005-http-layer.md): a handler blocks
 * on its request's event queue, which the engine thread fills without blocking.
 */
public final class Server implements AutoCloseable {
    private final ServeConfig cfg;
    private final Tokenizer tokenizer;
    private final List<Integer> eosIds;
    private final int vocab;
    private final Adapters adapters;
    private final Engine engine;
    private final HttpServer http;
    private final ExecutorService handlers = Executors.newVirtualThreadPerTaskExecutor();
    private final Metrics metrics = new Metrics();
    private final byte[] keyDigest; // SHA-256 of "Bearer <key>", or null when no key is set
    private final Set<Handle> inFlight = ConcurrentHashMap.newKeySet();
    private final AtomicInteger active = new AtomicInteger(); // generation exchanges between arrival and their last byte
    private final AtomicBoolean closing = new AtomicBoolean();
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final long created = Instant.now().getEpochSecond();
    private volatile boolean draining;

    private Server(ServeConfig cfg, LlamaModel model, Tokenizer tokenizer, List<Integer> eosIds, Adapters adapters, Engine engine) throws IOException {
        this.cfg = cfg;
        this.tokenizer = tokenizer;
        this.eosIds = List.copyOf(eosIds);
        this.vocab = model.config.vocabSize();
        this.adapters = adapters;
        this.engine = engine;
        this.keyDigest = cfg.apiKey() == null ? null : sha256("Bearer " + cfg.apiKey());
        http = HttpServer.create(new InetSocketAddress(cfg.host(), cfg.port()), 1024);
        http.setExecutor(handlers);
        http.createContext("/", this::exchange);
        http.start();
    }

    /** Starts the engine over the model and listens; the model and tokenizer stay the caller's (close them after this). */
    public static Server start(ServeConfig cfg, LlamaModel model, Tokenizer tokenizer, List<Integer> eosIds) throws IOException {
        var adapters = new Adapters(cfg.adapterRoot(), cfg.maxLoraRank(), cfg.loraModules());
        Engine engine = Engine.start(model, ids -> tokenizer.decode(ids, true), adapters,
                new Engine.Options(cfg.maxNumSeqs(), cfg.maxModelLen(), cfg.maxQueued(), cfg.maxCpuLoras(), cfg.maxLoras()));
        try {
            return new Server(cfg, model, tokenizer, eosIds, adapters, engine);
        } catch (IOException | RuntimeException e) {
            engine.close();
            throw e;
        }
    }

    /** http://host:port (the port actually bound, also when the config asked for 0). */
    public URI url() {
        String h = cfg.host().contains(":") ? "[" + cfg.host() + "]" : cfg.host();
        return URI.create("http://" + h + ":" + http.getAddress().getPort());
    }

    // ---- routing ----

    private void exchange(HttpExchange ex) {
        try (ex) {
            try {
                String path = ex.getRequestURI().getPath();
                if (path.startsWith("/v1/") && keyDigest != null) authorize(ex);
                switch (path) {
                    case "/health" -> {
                        method(ex, "GET");
                        send(ex, 200, null, null);
                    }
                    case "/metrics" -> {
                        method(ex, "GET");
                        var s = engine.stats();
                        send(ex, 200, "text/plain; version=0.0.4; charset=utf-8",
                                metrics.render(s.running(), s.waiting(), s.loadedAdapters().size(), adapters.list().size()).getBytes(StandardCharsets.UTF_8));
                    }
                    case "/v1/models" -> {
                        method(ex, "GET");
                        json(ex, 200, models());
                    }
                    case "/v1/completions" -> generate(ex, false);
                    case "/v1/chat/completions" -> generate(ex, true);
                    case "/v1/load_lora_adapter", "/v1/unload_lora_adapter" -> {
                        if (!cfg.allowRuntimeLoraUpdating()) throw notFound(path); // vLLM: the routes exist only when allowed
                        method(ex, "POST");
                        String msg = path.endsWith("/load_lora_adapter") ? load(Body.parse(body(ex))) : unload(Body.parse(body(ex)));
                        send(ex, 200, "text/plain; charset=utf-8", msg.getBytes(StandardCharsets.UTF_8));
                    }
                    default -> throw notFound(path);
                }
            } catch (ApiError e) {
                if (ex.getResponseCode() == -1) error(ex, e);
            } catch (RuntimeException e) {
                if (ex.getResponseCode() == -1) error(ex, new ApiError(500, "server_error", null, null, "internal error: " + e));
            }
        } catch (IOException e) {
            // the client went away while we answered: nothing is left to tell it
        }
    }

    private static ApiError notFound(String path) {
        return new ApiError(404, "NotFoundError", null, null, "Not Found: " + Body.clip(path));
    }

    private static void method(HttpExchange ex, String m) {
        if (!ex.getRequestMethod().equals(m)) {
            ex.getResponseHeaders().set("Allow", m);
            throw new ApiError(405, "invalid_request_error", null, null, "Method Not Allowed: use " + m);
        }
    }

    /** Bearer token compared as SHA-256 digests with MessageDigest.isEqual: constant time, whatever the lengths. */
    private void authorize(HttpExchange ex) {
        String given = ex.getRequestHeaders().getFirst("Authorization");
        if (!MessageDigest.isEqual(sha256(given == null ? "" : given), keyDigest)) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            throw new ApiError(401, "invalid_request_error", null, "invalid_api_key", "Unauthorized: expected the header 'Authorization: Bearer <--api-key>'");
        }
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The whole body (so that the connection can be kept alive), refused with 413 above the configured size. */
    private byte[] body(HttpExchange ex) throws IOException {
        method(ex, "POST");
        long max = cfg.maxRequestBytes();
        String len = ex.getRequestHeaders().getFirst("Content-Length");
        byte[] b = len != null && len.length() < 19 && len.chars().allMatch(Character::isDigit) && Long.parseLong(len) > max
                ? null : ex.getRequestBody().readNBytes((int) max + 1);
        if (b == null || b.length > max) {
            ex.getResponseHeaders().set("Connection", "close"); // the rest of the body is not read
            throw new ApiError(413, "invalid_request_error", null, null, "the request body is larger than " + max + " bytes");
        }
        return b;
    }

    // ---- models and adapters ----

    private ObjectNode models() {
        var list = Body.JSON.createObjectNode().put("object", "list");
        ArrayNode data = list.putArray("data");
        data.addObject().put("id", cfg.servedModelName()).put("object", "model").put("created", created).put("owned_by", "tune4j")
                .put("root", cfg.modelRoot()).putNull("parent").put("max_model_len", cfg.maxModelLen());
        for (var a : adapters.list()) {
            var card = data.addObject().put("id", a.name()).put("object", "model").put("created", created).put("owned_by", "tune4j")
                    .put("root", a.dir().toString()).put("parent", cfg.servedModelName()).put("rank", a.rank());
            a.targets().forEach(card.putArray("target_modules")::add);
        }
        return list;
    }

    /** vLLM's /v1/load_lora_adapter: {lora_name, lora_path, load_inplace}; the path must lie under --adapter-root. */
    private String load(Body b) {
        String name = b.str("lora_name", ""), path = b.str("lora_path", "");
        boolean inplace = b.bool("load_inplace", false);
        if (name.isEmpty() || path.isEmpty()) throw new ApiError(400, "InvalidUserInput", null, null, "Both 'lora_name' and 'lora_path' must be provided.");
        if (!Adapters.NAME.matcher(name).matches()) throw ApiError.invalid("lora_name", "lora_name: " + Adapters.badName(name));
        if (name.equals(cfg.servedModelName())) throw ApiError.invalid("lora_name", "lora_name: '" + name + "' is the base model's name");
        var dir = adapters.confined(path, "lora_path");
        if (!adapters.register(name, dir, inplace))
            throw new ApiError(400, "InvalidUserInput", "lora_name", null, "The lora adapter '" + name + "' has already been loaded.");
        if (inplace) engine.evict(name); // a reload must not serve the old weights from the cache
        return "Success: LoRA adapter '" + name + "' added successfully.";
    }

    private String unload(Body b) {
        String name = b.str("lora_name", "");
        if (name.isEmpty()) throw new ApiError(400, "InvalidUserInput", null, null, "either 'lora_name' and 'lora_int_id' needs to be provided.");
        if (!adapters.unregister(name))
            throw new ApiError(404, "NotFoundError", "lora_name", null, "The lora adapter '" + Body.clip(name) + "' cannot be found.");
        engine.evict(name);
        return "Success: LoRA adapter '" + name + "' removed successfully.";
    }

    // ---- generation ----

    /** The events of one request, handed from the engine thread (which must not block) to its HTTP handler. */
    private static final class Pending implements Listener {
        record Delta(String text, long[] ids) {}

        record Done(FinishReason reason, Usage usage, Throwable error) {}

        final BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        final long submitted = System.nanoTime();
        volatile long firstDelta, finished;

        @Override
        public void onDelta(String text, long[] tokenIds) {
            if (firstDelta == 0) firstDelta = System.nanoTime();
            events.add(new Delta(text, tokenIds));
        }

        @Override
        public void onFinish(FinishReason reason, Usage usage, Throwable error) {
            finished = System.nanoTime();
            events.add(new Done(reason, usage, error));
        }
    }

    private void generate(HttpExchange ex, boolean chat) throws IOException {
        active.incrementAndGet();
        try {
            Body b = Body.parse(body(ex));
            String model = b.str("model", "");
            Adapters.Entry adapter = model.isEmpty() || model.equals(cfg.servedModelName()) ? null
                    : adapters.find(model).orElseThrow(() -> ApiError.modelNotFound(Body.clip(model)));
            unsupported(b, chat);
            long[] ids = chat ? chatPrompt(b, adapter) : completionPrompt(b);
            Sampling sampling = sampling(b, ids.length, chat);
            boolean stream = b.bool("stream", false), returnIds = b.bool("return_token_ids", false);
            JsonNode so = b.get("stream_options");
            if (so != null && !so.isObject()) throw Body.wrongType("stream_options", "an object", so);
            if (so != null && !stream) throw ApiError.invalid("stream_options", "stream_options: only allowed with stream: true");
            JsonNode iu = so == null ? null : so.get("include_usage");
            if (iu != null && !iu.isNull() && !iu.isBoolean()) throw Body.wrongType("stream_options.include_usage", "true or false", iu);
            boolean usage = iu != null && iu.asBoolean();
            if (draining) throw new ApiError(503, "server_error", null, null, "the server is shutting down");
            var p = new Pending();
            Handle h;
            try {
                h = engine.submit(new Request(adapter == null ? null : adapter.name(), ids, sampling), p);
            } catch (Engine.Busy e) {
                ex.getResponseHeaders().set("Retry-After", "1");
                throw new ApiError(429, "rate_limit_error", null, null, "the server is at capacity (--max-num-seqs " + cfg.maxNumSeqs()
                        + " running, --max-queued-requests " + cfg.maxQueued() + " waiting); retry later");
            } catch (IllegalArgumentException e) {
                throw ApiError.invalid(null, e.getMessage());
            }
            inFlight.add(h);
            try {
                var out = new Reply(chat, "cmpl-" + UUID.randomUUID().toString().replace("-", ""), model.isEmpty() ? cfg.servedModelName() : model, ids, returnIds);
                if (stream) stream(ex, p, h, out, usage);
                else whole(ex, p, h, out);
            } finally {
                inFlight.remove(h);
            }
        } finally {
            active.decrementAndGet();
        }
    }

    /** Fields the server does not implement are refused unless they carry their default value. */
    private static void unsupported(Body b, boolean chat) {
        var one = Body.JSON.getNodeFactory().numberNode(1);
        var f = Body.JSON.getNodeFactory().booleanNode(false);
        b.unsupported("n", one);
        b.unsupported("logprobs", f, Body.JSON.getNodeFactory().numberNode(0));
        b.unsupported("logit_bias", Body.JSON.createObjectNode());
        if (chat) {
            b.unsupported("top_logprobs", Body.JSON.getNodeFactory().numberNode(0));
            b.unsupported("tools", Body.JSON.createArrayNode());
            b.unsupported("functions", Body.JSON.createArrayNode());
            b.unsupported("response_format", Body.JSON.createObjectNode().put("type", "text"));
        } else {
            b.unsupported("best_of", one);
            b.unsupported("echo", f);
            b.unsupported("suffix");
        }
    }

    private long[] completionPrompt(Body b) {
        JsonNode p = b.get("prompt");
        if (p == null) throw ApiError.invalid("prompt", "prompt: required (a string or an array of token ids)");
        if (p.isArray() && p.size() == 1 && !p.get(0).isNumber()) p = p.get(0); // ["text"] or [[ids]]: one prompt
        long[] ids;
        if (p.isTextual()) ids = tokenizer.encode(p.asText(), true);
        else if (p.isArray() && (p.isEmpty() || p.get(0).isNumber())) ids = Body.ids("prompt", p, 0, vocab, cfg.maxModelLen());
        else if (p.isArray()) throw ApiError.invalid("prompt", "prompt: several prompts in one request are not supported; send one request each");
        else throw Body.wrongType("prompt", "a string or an array of token ids", p);
        if (ids.length == 0) throw ApiError.invalid("prompt", "prompt: expected at least one token, found none");
        return ids;
    }

    /** The messages rendered by the adapter folder's own chat template if it has one, else the base's (as transformers). */
    private long[] chatPrompt(Body b, Adapters.Entry adapter) {
        JsonNode m = b.get("messages");
        if (m == null || !m.isArray() || m.isEmpty()) throw ApiError.invalid("messages", "messages: expected a non-empty array of {role, content} objects");
        var messages = new ArrayList<Map<String, Object>>();
        for (int i = 0; i < m.size(); i++) {
            JsonNode x = m.get(i);
            String at = "messages[" + i + "]";
            if (!x.isObject()) throw Body.wrongType(at, "an object", x);
            JsonNode role = x.get("role"), content = x.get("content");
            if (role == null || !role.isTextual()) throw ApiError.invalid("messages", at + ".role: expected a string");
            var msg = new LinkedHashMap<String, Object>();
            msg.put("role", role.asText());
            if (content == null || content.isNull()) msg.put("content", "");
            else if (content.isTextual()) msg.put("content", content.asText());
            else if (content.isArray()) { // OpenAI's content parts: only text parts, joined as vLLM does for text-only models
                var text = new StringBuilder();
                for (JsonNode part : content) {
                    if (!part.isObject() || !"text".equals(part.path("type").asText()) || !part.path("text").isTextual())
                        throw ApiError.invalid("messages", at + ".content: expected a string or text parts {\"type\": \"text\", \"text\": ...}, found " + Body.clip(part.toString()));
                    text.append(text.isEmpty() ? "" : "\n").append(part.get("text").asText());
                }
                msg.put("content", text.toString());
            } else throw Body.wrongType(at + ".content", "a string or an array of text parts", content);
            if (x.path("name").isTextual()) msg.put("name", x.get("name").asText());
            messages.add(msg);
        }
        ChatTemplate t = adapter != null && adapter.chatTemplate() != null ? adapter.chatTemplate() : tokenizer.chatTemplate().orElse(null);
        if (t == null) throw ApiError.invalid("messages", "this model has no chat template (tokenizer_config.json's chat_template), so chat is not available; use /v1/completions");
        var vars = new LinkedHashMap<String, Object>(tokenizer.specialTokens()); // what Tokenizer.applyChatTemplate passes
        vars.put("messages", messages);
        vars.put("add_generation_prompt", b.bool("add_generation_prompt", true));
        vars.put("tools", null);
        vars.put("documents", null);
        try {
            long[] ids = tokenizer.encode(t.render(vars), false); // the template writes the special tokens itself
            if (ids.length == 0) throw ApiError.invalid("messages", "messages: the chat template rendered no tokens");
            return ids;
        } catch (TemplateException e) {
            throw ApiError.invalid("messages", "the chat template refused the messages: " + e.getMessage());
        }
    }

    /** OpenAI's sampling fields with vLLM's extensions (top_k, repetition_penalty, ignore_eos, stop_token_ids). */
    private Sampling sampling(Body b, int promptTokens, boolean chat) {
        int room = cfg.maxModelLen() - promptTokens;
        if (room < 1) throw ApiError.invalid(chat ? "messages" : "prompt", "This model's maximum context length is " + cfg.maxModelLen()
                + " tokens. However, your prompt has " + promptTokens + " tokens, which leaves none to generate.");
        String field = chat && b.get("max_completion_tokens") != null ? "max_completion_tokens" : "max_tokens";
        int max = b.integer(field, 1, Integer.MAX_VALUE, chat ? room : Math.min(16, room)); // OpenAI's completions default 16
        if (max > room) throw ApiError.invalid(field, "This model's maximum context length is " + cfg.maxModelLen() + " tokens. However, you requested "
                + ((long) promptTokens + max) + " tokens (" + promptTokens + " in the " + (chat ? "messages" : "prompt") + ", " + max + " in the completion). Please reduce the length of the "
                + (chat ? "messages" : "prompt") + " or completion.");
        double temperature = b.number("temperature", 0, false, 2, 1.0);
        double topP = b.number("top_p", 0, true, 1, 1.0);
        int topK = b.integer("top_k", -1, vocab, 0);
        var eos = new ArrayList<>(eosIds);
        JsonNode stopIds = b.get("stop_token_ids");
        if (stopIds != null) for (long id : Body.ids("stop_token_ids", stopIds, 0, vocab, 64)) eos.add((int) id);
        return new Sampling(max, temperature, topP, Math.max(topK, 0), b.longValue("seed"), b.strings("stop", 16, 1000),
                b.number("repetition_penalty", 0, true, 100, 1.0), b.number("presence_penalty", -2, false, 2, 0),
                b.number("frequency_penalty", -2, false, 2, 0), b.bool("ignore_eos", false), eos);
    }

    /** How one request's answer is shaped: completions or chat, whole or in chunks. */
    private final class Reply {
        final boolean chat, returnIds;
        final String id, model;
        final long[] promptIds;
        final long createdAt = Instant.now().getEpochSecond();

        Reply(boolean chat, String id, String model, long[] promptIds, boolean returnIds) {
            this.chat = chat;
            this.id = chat ? "chat" + id : id;
            this.model = model;
            this.promptIds = promptIds;
            this.returnIds = returnIds;
        }

        ObjectNode head(boolean chunk) {
            return Body.JSON.createObjectNode().put("id", id).put("object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion")
                    .put("created", createdAt).put("model", model);
        }

        /** One choice: text (or a chat message/delta), its token ids when asked for, the finish reason or null. */
        ObjectNode choice(ObjectNode root, String text, long[] ids, String finish, boolean chunk, boolean first) {
            ObjectNode c = root.putArray("choices").addObject().put("index", 0);
            if (!chat) c.put("text", text);
            else if (!chunk) c.putObject("message").put("role", "assistant").put("content", text).putNull("refusal");
            else {
                ObjectNode d = c.putObject("delta");
                if (first) d.put("role", "assistant");
                if (text != null) d.put("content", text);
            }
            c.putNull("logprobs");
            if (finish == null) c.putNull("finish_reason");
            else c.put("finish_reason", finish);
            if (returnIds && ids != null) {
                ArrayNode a = c.putArray("token_ids");
                for (long t : ids) a.add(t);
            }
            return c;
        }

        ObjectNode usage(ObjectNode root, Usage u) {
            root.putObject("usage").put("prompt_tokens", u.promptTokens()).put("completion_tokens", u.completionTokens())
                    .put("total_tokens", u.promptTokens() + u.completionTokens());
            return root;
        }

        void promptIds(ObjectNode root) {
            if (!returnIds) return;
            ArrayNode a = root.putArray("prompt_token_ids");
            for (long t : promptIds) a.add(t);
        }
    }

    private static String finishReason(FinishReason r) {
        return switch (r) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case CANCELLED -> "abort";
            case ERROR -> "error";
        };
    }

    /** A failed generation: an adapter that would not load is the request's 400 (it named it), anything else a 500. */
    private static ApiError failure(Throwable e) {
        boolean input = e instanceof IllegalArgumentException || e instanceof dev.tune4j.hf.HfFormatException;
        String msg = e == null ? "generation failed" : String.valueOf(e.getMessage());
        return input ? ApiError.invalid("model", msg) : new ApiError(500, "server_error", null, null, "generation failed: " + msg);
    }

    private Pending.Done record(Pending p, Pending.Done d) {
        metrics.finished(finishReason(d.reason()), d.usage() == null ? 0 : d.usage().promptTokens(), d.usage() == null ? 0 : d.usage().completionTokens());
        if (p.firstDelta != 0) {
            metrics.timeToFirstToken.observe((p.firstDelta - p.submitted) / 1e9);
            int n = d.usage() == null ? 0 : d.usage().completionTokens();
            if (n > 1) metrics.timePerOutputToken.observe((p.finished - p.firstDelta) / 1e9 / (n - 1));
        }
        return d;
    }

    /** Waits for the engine's next event; an interrupted handler (shutdown) cancels its request and waits for the end. */
    private static Object next(Pending p, Handle h) {
        try {
            return p.events.take();
        } catch (InterruptedException e) {
            h.cancel();
            Thread.currentThread().interrupt();
            try {
                Object o;
                while (!((o = p.events.poll(10, TimeUnit.SECONDS)) instanceof Pending.Done)) if (o == null) return new Pending.Done(FinishReason.CANCELLED, null, e);
                return o;
            } catch (InterruptedException again) {
                return new Pending.Done(FinishReason.CANCELLED, null, e);
            }
        }
    }

    private void whole(HttpExchange ex, Pending p, Handle h, Reply r) throws IOException {
        var text = new StringBuilder();
        var ids = new ArrayList<Long>();
        Object o;
        while (!((o = next(p, h)) instanceof Pending.Done)) {
            var delta = (Pending.Delta) o;
            text.append(delta.text());
            for (long t : delta.ids()) ids.add(t);
        }
        var d = record(p, (Pending.Done) o);
        if (d.reason() == FinishReason.ERROR || d.usage() == null) throw failure(d.error());
        ObjectNode root = r.head(false);
        r.choice(root, text.toString(), ids.stream().mapToLong(Long::longValue).toArray(), finishReason(d.reason()), false, false);
        r.promptIds(root);
        json(ex, 200, r.usage(root, d.usage()));
    }

    /** Server-sent events, one chunk per text delta, flushed at once; a failed write means the client left: cancel. */
    private void stream(HttpExchange ex, Pending p, Handle h, Reply r, boolean includeUsage) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0); // chunked
        metrics.response(200);
        OutputStream out = ex.getResponseBody();
        try {
            boolean first = true;
            if (r.chat) { // OpenAI's first chat chunk carries the role
                ObjectNode c = r.head(true);
                r.choice(c, "", null, null, true, true);
                if (includeUsage) c.putNull("usage");
                event(out, c.toString());
                first = false;
            }
            Object o;
            while (!((o = next(p, h)) instanceof Pending.Done)) {
                var delta = (Pending.Delta) o;
                ObjectNode c = r.head(true);
                r.choice(c, delta.text(), delta.ids(), null, true, first);
                if (includeUsage) c.putNull("usage");
                event(out, c.toString());
                first = false;
            }
            var d = record(p, (Pending.Done) o);
            if (d.reason() == FinishReason.ERROR || d.usage() == null) {
                ApiError e = failure(d.error());
                event(out, errorBody(e).toString());
            } else {
                ObjectNode c = r.head(true);
                r.choice(c, r.chat ? null : "", new long[0], finishReason(d.reason()), true, first);
                if (includeUsage) c.putNull("usage");
                event(out, c.toString());
                if (includeUsage) {
                    ObjectNode u = r.head(true);
                    u.putArray("choices");
                    event(out, r.usage(u, d.usage()).toString());
                }
            }
            event(out, "[DONE]");
        } catch (IOException gone) {
            h.cancel();
            Object o;
            while (!((o = next(p, h)) instanceof Pending.Done)) { /* drain until the engine confirms */ }
            record(p, (Pending.Done) o);
            throw gone;
        }
    }

    private static void event(OutputStream out, String data) throws IOException {
        out.write(("data: " + data + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush(); // one HTTP chunk per event, sent now
    }

    // ---- responses ----

    private void json(HttpExchange ex, int status, JsonNode body) throws IOException {
        send(ex, status, "application/json", Body.JSON.writeValueAsBytes(body));
    }

    private void send(HttpExchange ex, int status, String type, byte[] body) throws IOException {
        if (type != null) ex.getResponseHeaders().set("Content-Type", type);
        metrics.response(status);
        ex.sendResponseHeaders(status, body == null || body.length == 0 ? -1 : body.length);
        if (body != null && body.length > 0) ex.getResponseBody().write(body);
    }

    private static ObjectNode errorBody(ApiError e) {
        var root = Body.JSON.createObjectNode();
        root.putObject("error").put("message", e.getMessage()).put("type", e.type).put("param", e.param).put("code", e.code);
        return root;
    }

    private void error(HttpExchange ex, ApiError e) throws IOException {
        json(ex, e.status, errorBody(e));
    }

    // ---- shutdown ----

    /**
     * Graceful stop (SIGTERM): no new connections, new requests on open ones get 503, in-flight requests may finish within
     * the grace period; then the rest are cancelled (their streams end with finish_reason "abort" and [DONE]) and the engine
     * is closed.
     */
    @Override
    public void close() {
        if (!closing.compareAndSet(false, true)) {
            awaitStopped();
            return;
        }
        draining = true;
        long grace = cfg.shutdownGrace().toMillis();
        Thread stopper = Thread.ofPlatform().name("serve-stop").start(() -> http.stop((int) Math.min(Integer.MAX_VALUE, grace / 1000 + 10)));
        waitIdle(grace);
        inFlight.forEach(Handle::cancel);
        waitIdle(5_000);
        try {
            stopper.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        handlers.shutdownNow();
        engine.close();
        stopped.countDown();
    }

    private void waitIdle(long millis) {
        long end = System.nanoTime() + millis * 1_000_000;
        while (active.get() > 0 && System.nanoTime() < end) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Blocks until {@link #close()} has finished (the CLI's main thread waits here while the shutdown hook closes). */
    public void awaitStopped() {
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
