package dev.tune4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.*;
import java.net.ConnectException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * What a hostile or careless client meets: fuzzed and oversized bodies, adapter names and paths that try to leave the
 * adapter root, vLLM's load/unload answers, 401 without the key, 429 with Retry-After over capacity, cancellation when a
 * client disconnects, keep-alive with chunked streams, and a graceful stop. The server must keep answering throughout.
 */
class ServerSafetyTest {
    static ServeFixture fx;
    static Server server;
    static final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    static Path outside;

    @BeforeAll
    static void start() throws Exception {
        fx = ServeFixture.get();
        server = fx.start(4, 4, 2, null, true);
        // an adapter outside the root, and a symbolic link inside the root that points at it
        outside = Files.createTempDirectory("tune4j-outside").resolve("evil");
        Files.createDirectories(outside);
        try (var files = Files.list(fx.root.resolve("a1"))) {
            for (Path f : files.toList()) Files.copy(f, outside.resolve(f.getFileName()));
        }
        Path link = fx.root.resolve("escape");
        if (!Files.exists(link, java.nio.file.LinkOption.NOFOLLOW_LINKS)) Files.createSymbolicLink(link, outside);
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
        fx.closeModels();
    }

    record Reply(int status, String body, HttpResponse<String> raw) {
        JsonNode json() throws IOException {
            return Body.JSON.readTree(body);
        }

        String errorMessage() throws IOException {
            return json().path("error").path("message").asText();
        }
    }

    static Reply call(Server s, String method, String path, String body, String... headers) throws Exception {
        var b = HttpRequest.newBuilder(URI.create(s.url() + path)).timeout(Duration.ofSeconds(60));
        if (headers.length > 0) b.headers(headers);
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        var r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), r.body(), r);
    }

    static Reply post(String path, String body) throws Exception {
        return call(server, "POST", path, body, "Content-Type", "application/json");
    }

    static void assertErrorShape(Reply r) throws IOException {
        JsonNode e = r.json().path("error");
        assertThat(e.isObject()).as(r.body()).isTrue();
        assertThat(e.has("message") && e.has("type") && e.has("param") && e.has("code")).as(r.body()).isTrue();
    }

    @Test
    void anApiKeyIsRequiredOnV1ButNotOnHealth() throws Exception {
        Server s = fx.start(2, 2, 1, "sekret", false);
        try {
            Reply none = call(s, "GET", "/v1/models", null);
            assertThat(none.status()).isEqualTo(401);
            assertErrorShape(none);
            assertThat(call(s, "GET", "/v1/models", null, "Authorization", "Bearer wrong").status()).isEqualTo(401);
            assertThat(call(s, "GET", "/v1/models", null, "Authorization", "Bearer sekret-and-more").status()).isEqualTo(401);
            assertThat(call(s, "GET", "/v1/models", null, "Authorization", "Bearer sekret").status()).isEqualTo(200);
            assertThat(call(s, "POST", "/v1/completions", "{\"prompt\": \"x\"}", "Authorization", "sekret").status()).isEqualTo(401);
            assertThat(call(s, "GET", "/health", null).status()).isEqualTo(200);
        } finally {
            s.close();
        }
    }

    @Test
    void badFieldsAre400NamingTheField() throws Exception {
        record Case(String body, String param) {}
        for (var c : List.of(new Case("{\"prompt\": 5}", "prompt"), new Case("{\"prompt\": \"x\", \"max_tokens\": \"9\"}", "max_tokens"),
                new Case("{\"prompt\": \"x\", \"max_tokens\": 100000}", "max_tokens"), new Case("{\"prompt\": \"x\", \"temperature\": -1}", "temperature"),
                new Case("{\"prompt\": \"x\", \"max_tokens\": 1e400}", "max_tokens"), new Case("{\"prompt\": \"x\", \"top_p\": 0}", "top_p"),
                new Case("{\"prompt\": \"x\", \"stop\": [1]}", "stop"), new Case("{\"prompt\": [1, 99999]}", "prompt"),
                new Case("{\"prompt\": \"x\", \"n\": 2}", "n"), new Case("{\"prompt\": \"x\", \"stream\": \"yes\"}", "stream"),
                new Case("{\"prompt\": \"x\", \"seed\": 1.5}", "seed"), new Case("{\"prompt\": \"x\", \"model\": 7}", "model"),
                new Case("{}", "prompt"), new Case("{\"prompt\": \"x\", \"stream_options\": {\"include_usage\": true}}", "stream_options"))) {
            Reply r = post("/v1/completions", c.body());
            assertThat(r.status()).as(c.body() + " → " + r.body()).isEqualTo(400);
            assertErrorShape(r);
            assertThat(r.json().path("error").path("param").asText()).as(c.body()).isEqualTo(c.param());
            assertThat(r.json().path("error").path("type").asText()).isEqualTo("invalid_request_error");
        }
        Reply chat = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}");
        assertThat(chat.status()).isEqualTo(400);
        assertThat(chat.errorMessage()).contains("messages[0].content");
        Reply missing = post("/v1/completions", "{\"model\": \"nope\", \"prompt\": \"x\"}");
        assertThat(missing.status()).isEqualTo(404);
        assertThat(missing.errorMessage()).isEqualTo("The model `nope` does not exist.");
        assertThat(post("/v1/completions", "{\"prompt\": \"" + "x".repeat(70_000) + "\"}").status()).isEqualTo(413);
        assertThat(call(server, "GET", "/v1/completions", null).status()).isEqualTo(405);
        assertThat(call(server, "GET", "/nowhere", null).status()).isEqualTo(404);
    }

    @Test
    void fuzzedBodiesNeverCrashTheServerOrLeaveTheRoot() throws Exception {
        var rnd = new Random(13);
        String valid = "{\"model\": \"a1\", \"prompt\": \"Once upon\", \"max_tokens\": 3, \"temperature\": 0.5, \"stop\": [\"x\"], \"stream\": false}";
        List<String> hostile = List.of("../x", "/etc", "/etc/passwd", "a1/../../x", "a1/../a2", "..", ".", "escape", "a\u0000b", "x".repeat(5000),
                "%2e%2e", "a1\\..\\..", "~", "a1/", " a1", "CON");
        List<String> values = List.of("null", "true", "-1", "0", "1e308", "-1e308", "99999999999999999999999999", "\"\"", "[]", "{}", "[[[[1]]]]",
                "\"\\u0000\"", "1.5", "NaN", "\"" + "y".repeat(3000) + "\"");
        List<String> fields = List.of("model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "stream", "stream_options",
                "messages", "n", "logprobs", "presence_penalty", "repetition_penalty", "stop_token_ids", "ignore_eos", "return_token_ids");
        var statuses = new TreeMap<Integer, Integer>();
        for (int i = 0; i < 300; i++) {
            String body = switch (i % 5) {
                case 0 -> valid.substring(0, rnd.nextInt(valid.length())); // truncated
                case 1 -> { // random bytes
                    byte[] b = new byte[rnd.nextInt(200)];
                    rnd.nextBytes(b);
                    yield new String(b, StandardCharsets.ISO_8859_1);
                }
                case 2 -> "{\"prompt\": \"hi\", \"max_tokens\": 2, \"" + fields.get(rnd.nextInt(fields.size())) + "\": " + values.get(rnd.nextInt(values.size())) + "}";
                case 3 -> "{\"model\": " + Body.JSON.writeValueAsString(hostile.get(rnd.nextInt(hostile.size()))) + ", \"prompt\": \"hi\", \"max_tokens\": 2}";
                default -> "[".repeat(rnd.nextInt(2000)) + "1";
            };
            String path = i % 7 == 0 ? "/v1/chat/completions" : "/v1/completions";
            Reply r = post(path, body);
            statuses.merge(r.status(), 1, Integer::sum);
            assertThat(r.status()).as(body.length() > 200 ? body.substring(0, 200) : body).isIn(200, 400, 404, 413);
            if (r.status() != 200) assertErrorShape(r);
        }
        for (String name : hostile) {
            Reply r = post("/v1/load_lora_adapter", "{\"lora_name\": \"h" + Math.abs(name.hashCode()) + "\", \"lora_path\": " + Body.JSON.writeValueAsString(name) + "}");
            boolean inside = name.equals("a1/../a2") || name.equals("a1/"); // they normalise to folders under the root: loadable
            assertThat(r.status()).as("lora_path " + Body.clip(name) + ": " + r.body()).isIn(inside ? List.of(200) : List.of(400, 404));
            Reply m = post("/v1/completions", "{\"model\": " + Body.JSON.writeValueAsString(name) + ", \"prompt\": \"hi\", \"max_tokens\": 1}");
            assertThat(m.status()).as("model " + Body.clip(name) + ": " + m.body()).isIn(400, 404);
        }
        assertThat(post("/v1/load_lora_adapter", "{\"lora_name\": \"evil\", \"lora_path\": " + Body.JSON.writeValueAsString(outside.toString()) + "}").status()).isEqualTo(400);
        assertThat(post("/v1/load_lora_adapter", "{\"lora_name\": \"evil\", \"lora_path\": \"escape\"}").status()).isEqualTo(400);
        for (JsonNode m : call(server, "GET", "/v1/models", null).json().path("data"))
            if (!m.path("parent").isNull()) assertThat(Path.of(m.path("root").asText())).as(m.toString()).startsWith(fx.root.toRealPath());
        Reply ok = post("/v1/completions", valid);
        assertThat(ok.status()).as(ok.body()).isEqualTo(200);
        assertThat(call(server, "GET", "/health", null).status()).isEqualTo(200);
        System.out.println("fuzz statuses: " + statuses);
    }

    @Test
    void loadAndUnloadAnswerAsVllmDoes() throws Exception {
        Reply load = post("/v1/load_lora_adapter", "{\"lora_name\": \"x1\", \"lora_path\": \"a1\"}");
        assertThat(load.status()).isEqualTo(200);
        assertThat(load.body()).isEqualTo("Success: LoRA adapter 'x1' added successfully.");
        Reply again = post("/v1/load_lora_adapter", "{\"lora_name\": \"x1\", \"lora_path\": \"a1\"}");
        assertThat(again.status()).isEqualTo(400);
        assertThat(again.errorMessage()).isEqualTo("The lora adapter 'x1' has already been loaded.");
        assertThat(post("/v1/load_lora_adapter", "{\"lora_name\": \"x1\", \"lora_path\": \"a2\", \"load_inplace\": true}").status()).isEqualTo(200);
        Reply half = post("/v1/load_lora_adapter", "{\"lora_name\": \"x2\"}");
        assertThat(half.status()).isEqualTo(400);
        assertThat(half.errorMessage()).isEqualTo("Both 'lora_name' and 'lora_path' must be provided.");
        assertThat(post("/v1/load_lora_adapter", "{\"lora_name\": \"x2\", \"lora_path\": \"no-such\"}").status()).isEqualTo(404);
        assertThat(post("/v1/completions", "{\"model\": \"x1\", \"prompt\": \"Once\", \"max_tokens\": 3}").status()).isEqualTo(200);
        assertThat(call(server, "GET", "/v1/models", null).json().findValuesAsText("id")).contains("x1");
        Reply unload = post("/v1/unload_lora_adapter", "{\"lora_name\": \"x1\"}");
        assertThat(unload.status()).isEqualTo(200);
        assertThat(unload.body()).isEqualTo("Success: LoRA adapter 'x1' removed successfully.");
        Reply gone = post("/v1/unload_lora_adapter", "{\"lora_name\": \"x1\"}");
        assertThat(gone.status()).isEqualTo(404);
        assertThat(gone.errorMessage()).isEqualTo("The lora adapter 'x1' cannot be found.");
        assertThat(post("/v1/completions", "{\"model\": \"x1\", \"prompt\": \"Once\", \"max_tokens\": 3}").status()).isEqualTo(404);

        Server plain = fx.start(2, 2, 1, null, false); // without --allow-runtime-lora-updating the routes do not exist
        try {
            assertThat(call(plain, "POST", "/v1/load_lora_adapter", "{\"lora_name\": \"x1\", \"lora_path\": \"a1\"}").status()).isEqualTo(404);
            assertThat(call(plain, "POST", "/v1/unload_lora_adapter", "{\"lora_name\": \"a0\"}").status()).isEqualTo(404);
        } finally {
            plain.close();
        }
    }

    /** A raw HTTP/1.1 connection: what a streaming client sees byte for byte. */
    static final class Raw implements Closeable {
        final Socket socket;
        final BufferedReader in;
        final OutputStream out;

        Raw(Server s) throws IOException {
            socket = new Socket(s.url().getHost(), s.url().getPort());
            socket.setSoTimeout(30_000);
            in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
            out = socket.getOutputStream();
        }

        void post(String path, String json) throws IOException {
            byte[] b = json.getBytes(StandardCharsets.UTF_8);
            out.write(("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + b.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(b);
            out.flush();
        }

        /** Status line and headers (lower-cased names). */
        Map<String, String> head() throws IOException {
            var h = new LinkedHashMap<String, String>();
            h.put(":status", in.readLine());
            for (String l; !(l = in.readLine()).isEmpty(); ) h.put(l.substring(0, l.indexOf(':')).toLowerCase(Locale.ROOT), l.substring(l.indexOf(':') + 1).strip());
            return h;
        }

        /** The next SSE data line of a chunked body (chunk sizes skipped). */
        String nextEvent() throws IOException {
            for (String l; (l = in.readLine()) != null; ) if (l.startsWith("data: ")) return l.substring(6);
            return null;
        }

        /** Reads to the chunked body's terminating zero-size chunk. */
        void toEndOfChunks() throws IOException {
            for (String l; (l = in.readLine()) != null; ) if (l.equals("0")) {
                in.readLine();
                return;
            }
        }

        @Override
        public void close() throws IOException {
            if (socket.isClosed()) return;
            socket.setSoLinger(true, 0); // a reset, as a killed client leaves it
            socket.close();
        }
    }

    @Test
    void streamsAreChunkedAndTheConnectionIsKeptAlive() throws Exception {
        try (var raw = new Raw(server)) {
            for (int i = 0; i < 3; i++) {
                raw.post("/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 8, \"stream\": true}");
                var h = raw.head();
                assertThat(h.get(":status")).isEqualTo("HTTP/1.1 200 OK");
                assertThat(h.get("transfer-encoding")).isEqualTo("chunked");
                assertThat(h.get("content-type")).startsWith("text/event-stream");
                var events = new ArrayList<String>();
                for (String e; !(e = raw.nextEvent()).equals("[DONE]"); ) events.add(e);
                assertThat(events).isNotEmpty();
                raw.toEndOfChunks();
            }
        }
    }

    static double metric(Server s, String line) throws Exception {
        for (String l : call(s, "GET", "/metrics", null).body().split("\n")) if (l.startsWith(line + " ")) return Double.parseDouble(l.substring(line.length() + 1));
        return 0;
    }

    @Test
    void overCapacityIs429WithRetryAfterAndADisconnectCancels() throws Exception {
        Server small = fx.start(1, 0, 1, null, false);
        try (var raw = new Raw(small)) {
            raw.post("/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 500, \"ignore_eos\": true, \"stream\": true}");
            assertThat(raw.head().get(":status")).isEqualTo("HTTP/1.1 200 OK");
            assertThat(raw.nextEvent()).startsWith("{"); // it is running
            Reply busy = call(small, "POST", "/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 2}");
            assertThat(busy.status()).isEqualTo(429);
            assertThat(busy.raw().headers().firstValue("Retry-After")).hasValue("1");
            assertErrorShape(busy);
            raw.close(); // the client goes away mid-stream
            long end = System.nanoTime() + 20_000_000_000L;
            while (metric(small, "tune4j:request_success_total{finished_reason=\"abort\"}") < 1 && System.nanoTime() < end) Thread.sleep(20);
            assertThat(metric(small, "tune4j:request_success_total{finished_reason=\"abort\"}")).as("the abandoned stream was cancelled").isEqualTo(1);
            assertThat(metric(small, "tune4j:request_success_total{finished_reason=\"length\"}")).isZero();
            assertThat(call(small, "POST", "/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 2}").status()).isEqualTo(200);
            String m = call(small, "GET", "/metrics", null).body();
            assertThat(m).contains("tune4j:num_requests_running 0", "tune4j:time_to_first_token_seconds_count 2", "tune4j:generation_tokens_total",
                    "tune4j:http_responses_total{code=\"429\"} 1");
        } finally {
            small.close();
        }
    }

    @Test
    void aStopLetsStreamsEndCleanlyAndRefusesNewConnections() throws Exception {
        Server s = fx.start(2, 2, 1, null, false, Duration.ZERO); // no grace: the running stream is cancelled at once
        var url = s.url();
        try (var raw = new Raw(s)) {
            raw.post("/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 500, \"ignore_eos\": true, \"stream\": true}");
            raw.head();
            assertThat(raw.nextEvent()).startsWith("{");
            Thread closer = Thread.ofPlatform().start(s::close);
            String last = null;
            for (String e; !(e = raw.nextEvent()).equals("[DONE]"); ) last = e;
            assertThat(Body.JSON.readTree(last).path("choices").path(0).path("finish_reason").asText()).isEqualTo("abort");
            closer.join(30_000);
            assertThat(closer.isAlive()).isFalse();
        }
        assertThatThrownBy(() -> new Socket(url.getHost(), url.getPort()).close()).isInstanceOf(ConnectException.class);

        Server patient = fx.start(2, 2, 1, null, false, Duration.ofSeconds(30)); // within the grace period a stream finishes
        try (var raw = new Raw(patient)) {
            raw.post("/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 60, \"ignore_eos\": true, \"stream\": true}");
            raw.head();
            assertThat(raw.nextEvent()).startsWith("{");
            Thread closer = Thread.ofPlatform().start(patient::close);
            String last = null;
            for (String e; !(e = raw.nextEvent()).equals("[DONE]"); ) last = e;
            assertThat(Body.JSON.readTree(last).path("choices").path(0).path("finish_reason").asText()).isEqualTo("length");
            closer.join(30_000);
            assertThat(closer.isAlive()).isFalse();
        }
    }
}
