package dev.tune4j.serve;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.CompletionChoice;
import com.openai.models.completions.CompletionCreateParams;
import com.openai.models.models.Model;
import dev.tune4j.tensor.Memory;
import dev.tune4j.tensor.Tensors;
import dev.tune4j.text.ChatTemplate;
import dev.tune4j.text.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The server as OpenAI's official Java SDK sees it, on a loopback port over the real stories260K model and eight
 * adapters: models, completions and chat completions whole and streamed, adapter selection by `model`, and — at
 * temperature 0 — the same tokens as the single-request greedy path (`tune4j generate --adapter`), also when requests for
 * different adapters share batches (64 concurrent streams over 8 adapters and the base).
 */
class ServerOpenAiTest {
    static ServeFixture fx;
    static Server server;
    static OpenAIClient client;
    static Tokenizer tok;
    static final List<String> PROMPTS = List.of("Once upon a time", "The little dog", "Lily wanted to", "Tom and his mom", "One day, a bird");

    @BeforeAll
    static void start() throws Exception {
        fx = ServeFixture.get();
        server = fx.start(64, 64, 9, null, false);
        client = OpenAIOkHttpClient.builder().baseUrl(server.url() + "/v1").apiKey("unused").maxRetries(0).timeout(Duration.ofSeconds(60)).build();
        tok = Tokenizer.load(fx.model);
    }

    @AfterAll
    static void stop() {
        if (client != null) client.close();
        if (server != null) server.close();
        if (tok != null) tok.close();
        if (fx != null) fx.closeModels();
    }

    static String model(String adapter) {
        return adapter == null ? ServeFixture.BASE : adapter;
    }

    static long[] ids(JsonValue v) {
        return v.convert(long[].class);
    }

    @Test
    void listsTheBaseAndItsAdapters() {
        List<Model> models = client.models().list().data();
        assertThat(models).extracting(Model::id).startsWith(ServeFixture.BASE).contains("a0");
        Model a0 = models.stream().filter(m -> m.id().equals("a0")).findFirst().orElseThrow();
        assertThat(a0._additionalProperties().get("parent").convert(String.class)).isEqualTo(ServeFixture.BASE);
        assertThat(a0._additionalProperties().get("root").convert(String.class)).endsWith("a0");
        assertThat(a0._additionalProperties().get("rank").convert(Integer.class)).isEqualTo(4);
    }

    @Test
    void completionsEqualTheSingleRequestPathForTheBaseAndEveryAdapter() {
        var outputs = new HashSet<String>();
        var models = new ArrayList<String>(ServeFixture.ADAPTERS);
        models.add(null);
        for (String a : models) {
            String prompt = PROMPTS.get(Math.abs(Objects.hashCode(a)) % PROMPTS.size());
            long[] promptIds = tok.encode(prompt, true);
            var c = client.completions().create(CompletionCreateParams.builder().model(model(a)).prompt(prompt).maxTokens(24).temperature(0.0)
                    .putAdditionalBodyProperty("return_token_ids", JsonValue.from(true)).build());
            CompletionChoice choice = c.choices().getFirst();
            long[] ref = fx.reference(a, promptIds, 24);
            assertThat(fx.withoutEos(ids(choice._additionalProperties().get("token_ids")))).as(model(a)).containsExactly(fx.withoutEos(ref));
            assertThat(choice.text()).as(model(a)).isEqualTo(tok.decode(ref, true));
            assertThat(choice.finishReason()).isEqualTo(ref.length == 24 && !fx.eos.contains((int) ref[23]) ? CompletionChoice.FinishReason.LENGTH : CompletionChoice.FinishReason.STOP);
            assertThat(c.model()).isEqualTo(model(a));
            assertThat(c.usage().orElseThrow().promptTokens()).isEqualTo(promptIds.length);
            assertThat(c.usage().orElseThrow().completionTokens()).isEqualTo(ref.length);
            outputs.add(choice.text());
        }
        assertThat(outputs).as("adapters change the output").hasSizeGreaterThanOrEqualTo(6);
    }

    @Test
    void streamedCompletionsWithUsageEqualTheWholeOne() {
        long[] promptIds = tok.encode(PROMPTS.get(1), true);
        var params = CompletionCreateParams.builder().model("a3").promptOfArrayOfTokens(Arrays.stream(promptIds).boxed().toList()).maxTokens(20).temperature(0.0)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build();
        var text = new StringBuilder();
        var usage = new ArrayList<com.openai.models.completions.CompletionUsage>();
        var finish = new ArrayList<CompletionChoice.FinishReason>();
        try (var stream = client.completions().createStreaming(params)) {
            stream.stream().forEach(chunk -> {
                chunk.choices().forEach(ch -> {
                    text.append(ch.text());
                    ch._finishReason().asKnown().ifPresent(finish::add);
                });
                chunk.usage().ifPresent(usage::add);
            });
        }
        long[] ref = fx.reference("a3", promptIds, 20);
        assertThat(text.toString()).isEqualTo(tok.decode(ref, true));
        assertThat(finish).hasSize(1);
        assertThat(usage).singleElement().satisfies(u -> {
            assertThat(u.promptTokens()).isEqualTo(promptIds.length);
            assertThat(u.completionTokens()).isEqualTo(ref.length);
            assertThat(u.totalTokens()).isEqualTo(promptIds.length + ref.length);
        });
    }

    @Test
    void chatUsesTheBaseTemplateOrTheAdaptersOwn() {
        String user = "Tell me a story";
        for (String a : new String[]{null, "a2", "a7"}) {
            var messages = List.<Map<String, Object>>of(Map.of("role", "user", "content", user));
            long[] expectedPrompt = "a7".equals(a)
                    ? tok.encode(ChatTemplate.parse(ServeFixture.ADAPTER_TEMPLATE, "a7").render(vars(messages)), false)
                    : tok.encode(tok.applyChatTemplate(messages, true), false);
            long[] ref = fx.reference(a, expectedPrompt, 16);
            var params = ChatCompletionCreateParams.builder().model(model(a)).addUserMessage(user).maxCompletionTokens(16).temperature(0.0)
                    .putAdditionalBodyProperty("return_token_ids", JsonValue.from(true)).build();
            var c = client.chat().completions().create(params);
            assertThat(ids(c._additionalProperties().get("prompt_token_ids"))).as(model(a) + " prompt").containsExactly(expectedPrompt);
            assertThat(c.choices().getFirst().message().content()).as(model(a)).contains(tok.decode(ref, true));
            assertThat(c.usage().orElseThrow().completionTokens()).isEqualTo(ref.length);

            var streamed = new StringBuilder();
            var roles = new ArrayList<Object>();
            var usage = new ArrayList<Long>();
            try (var s = client.chat().completions().createStreaming(params.toBuilder()
                    .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
                s.stream().forEach(chunk -> {
                    chunk.choices().forEach(ch -> {
                        ch.delta().content().ifPresent(streamed::append);
                        ch.delta().role().ifPresent(roles::add);
                    });
                    chunk.usage().ifPresent(u -> usage.add(u.completionTokens()));
                });
            }
            assertThat(streamed.toString()).as(model(a) + " streamed").isEqualTo(tok.decode(ref, true));
            assertThat(roles).hasSize(1);
            assertThat(usage).containsExactly((long) ref.length);
        }
    }

    @Test
    void errorsReachTheSdkAsItsExceptions() {
        assertThatThrownBy(() -> client.completions().create(CompletionCreateParams.builder().model("no-such").prompt("x").maxTokens(2).build()))
                .isInstanceOfSatisfying(NotFoundException.class, e -> assertThat(e.getMessage()).contains("The model `no-such` does not exist."));
        assertThatThrownBy(() -> client.completions().create(CompletionCreateParams.builder().model(ServeFixture.BASE).prompt("x").maxTokens(100_000).build()))
                .isInstanceOfSatisfying(BadRequestException.class, e -> assertThat(e.getMessage()).contains("maximum context length is 512"));
    }

    static Map<String, Object> vars(List<Map<String, Object>> messages) {
        var v = new LinkedHashMap<String, Object>(tok.specialTokens());
        v.put("messages", messages);
        v.put("add_generation_prompt", true);
        v.put("tools", null);
        v.put("documents", null);
        return v;
    }

    /** One round: 64 concurrent streams over a0..a7 and the base; each stream's tokens against its single-request output. */
    List<String> round(int maxTokens) throws Exception {
        var models = new ArrayList<String>(ServeFixture.ADAPTERS);
        models.add(null);
        var pool = Executors.newFixedThreadPool(64);
        try {
            var futures = new ArrayList<Future<String>>();
            var start = new CountDownLatch(1);
            for (int i = 0; i < 64; i++) {
                String a = models.get(i % models.size());
                String prompt = PROMPTS.get(i % PROMPTS.size());
                futures.add(pool.submit(() -> {
                    start.await();
                    var got = new ArrayList<Long>();
                    var text = new StringBuilder();
                    var finished = new ArrayList<Object>();
                    var params = CompletionCreateParams.builder().model(model(a)).prompt(prompt).maxTokens(maxTokens).temperature(0.0)
                            .putAdditionalBodyProperty("return_token_ids", JsonValue.from(true)).build();
                    try (var s = client.completions().createStreaming(params)) {
                        s.stream().forEach(chunk -> chunk.choices().forEach(ch -> {
                            text.append(ch.text());
                            for (long t : ids(ch._additionalProperties().get("token_ids"))) got.add(t);
                            ch._finishReason().asKnown().ifPresent(finished::add);
                        }));
                    }
                    long[] ref = fx.reference(a, tok.encode(prompt, true), maxTokens);
                    long[] mine = got.stream().mapToLong(Long::longValue).toArray();
                    if (finished.size() != 1) return model(a) + " '" + prompt + "': stream ended without a finish reason";
                    if (!Arrays.equals(fx.withoutEos(mine), fx.withoutEos(ref)))
                        return model(a) + " '" + prompt + "': " + Arrays.toString(mine) + " != " + Arrays.toString(ref);
                    if (!text.toString().equals(tok.decode(ref, true))) return model(a) + " '" + prompt + "': text differs";
                    return null;
                }));
            }
            start.countDown();
            var errors = new ArrayList<String>();
            for (var f : futures) {
                String e = f.get(120, TimeUnit.SECONDS);
                if (e != null) errors.add(e);
            }
            return errors;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void sixtyFourConcurrentStreamsOverEightAdaptersAndTheBaseAreExactAndKeepMemoryFlat() throws Exception {
        for (String a : ServeFixture.ADAPTERS) for (String p : PROMPTS) fx.reference(a, tok.encode(p, true), 24); // references first
        for (String p : PROMPTS) fx.reference(null, tok.encode(p, true), 24);
        long t0 = System.nanoTime();
        assertThat(round(24)).as("errors in the first round").isEmpty(); // also warms up: adapters loaded, pools grown
        long t1 = System.nanoTime();
        Tensors.settleGarbage();
        long objects = Tensors.liveNativeObjects(), rss = Memory.residentBytes();
        for (int r = 0; r < 2; r++) assertThat(round(24)).as("errors in round " + (r + 2)).isEmpty();
        long t2 = System.nanoTime();
        Tensors.settleGarbage();
        System.out.printf("64 streams x 24 tokens over 8 adapters + base: first round %.2f s, next two %.2f s; RSS %+.1f MB, native objects %d -> %d%n",
                (t1 - t0) / 1e9, (t2 - t1) / 1e9, (Memory.residentBytes() - rss) / 1e6, objects, Tensors.liveNativeObjects());
        assertThat(Tensors.liveNativeObjects()).as("native objects after two more rounds").isEqualTo(objects);
        assertThat(Memory.residentBytes() - rss).as("RSS growth over two rounds of 64 streams").isLessThan(24L << 20);
    }
}
