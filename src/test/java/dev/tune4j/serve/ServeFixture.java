package dev.tune4j.serve;

import dev.tune4j.EmbeddedModel;
import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.tensor.Compute;
import dev.tune4j.text.Tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;

/**
 * The serve tests' world, built once per run: the stories260K model (shipped in the jar) with a chat template added,
 * eight LoRA adapters a0..a7 with random B (so each changes the output) under an adapter root, a7 with its own chat
 * template, and the reference outputs of the single-request greedy path ({@code tune4j generate --adapter}'s Generator).
 */
final class ServeFixture {
    static final String BASE = "stories";
    static final List<String> ADAPTERS = List.of("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7");
    static final String TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
    static final String ADAPTER_TEMPLATE = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}Once{% endif %}";

    private static ServeFixture instance;
    final Path model, root;
    final List<Integer> eos;
    private final Map<String, long[]> references = new HashMap<>();

    private ServeFixture(Path model, Path root, List<Integer> eos) {
        this.model = model;
        this.root = root;
        this.eos = eos;
    }

    static synchronized ServeFixture get() throws Exception {
        if (instance != null) return instance;
        Path tmp = Files.createTempDirectory("tune4j-serve");
        Path model = tmp.resolve("stories");
        Files.createDirectories(model);
        try (var files = Files.list(EmbeddedModel.stories260k())) {
            for (Path f : files.toList()) Files.copy(f, model.resolve(f.getFileName()));
        }
        var tc = (com.fasterxml.jackson.databind.node.ObjectNode) Body.JSON.readTree(model.resolve("tokenizer_config.json").toFile());
        tc.put("chat_template", TEMPLATE);
        Files.writeString(model.resolve("tokenizer_config.json"), tc.toPrettyString());
        Path root = tmp.resolve("adapters");
        Files.createDirectories(root);
        List<Integer> eos;
        try (ModelFolder f = ModelFolder.open(model); LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
            eos = f.config().eosTokenIds();
            for (int i = 0; i < ADAPTERS.size(); i++) {
                var cfg = new LoraConfig(i % 2 == 0 ? 4 : 8, 8, 0, List.of("q_proj", "v_proj", "o_proj", "down_proj"), false);
                try (LoraAdapter a = LoraAdapter.create(m, cfg, 100 + i, BASE); var ng = new org.bytedeco.pytorch.NoGradGuard()) {
                    for (var l : a.modules().values()) l.lora_B.normal_(0, 0.5, new org.bytedeco.pytorch.GeneratorOptional());
                    a.save(root.resolve(ADAPTERS.get(i)));
                }
            }
        }
        Files.writeString(root.resolve("a7/chat_template.jinja"), ADAPTER_TEMPLATE);
        return instance = new ServeFixture(model, root, eos);
    }

    /** A server over a fresh copy of the model; adapters are found under the root by name. */
    Server start(int maxNumSeqs, int maxQueued, int maxLoras, String apiKey, boolean runtime) throws Exception {
        return start(maxNumSeqs, maxQueued, maxLoras, apiKey, runtime, Duration.ofSeconds(5));
    }

    Server start(int maxNumSeqs, int maxQueued, int maxLoras, String apiKey, boolean runtime, Duration grace) throws Exception {
        var cfg = new ServeConfig(BASE, model.toString(), Map.of("a0", root.resolve("a0")), root, "127.0.0.1", 0, apiKey, runtime,
                maxLoras, Math.max(maxLoras, 9), 16, maxNumSeqs, 512, maxQueued, 64 << 10, grace);
        ModelFolder f = ModelFolder.open(model);
        LlamaModel m = LlamaModel.load(f, Compute.cpu());
        Tokenizer tok = Tokenizer.load(model);
        opened.add(() -> {
            m.close();
            tok.close();
            f.close();
        });
        return Server.start(cfg, m, tok, eos);
    }

    private final List<Runnable> opened = new ArrayList<>();

    /** Frees the models behind servers started here (call after closing them). */
    synchronized void closeModels() {
        opened.forEach(Runnable::run);
        opened.clear();
    }

    /** The tokens the single-request greedy path generates for ids with adapter (null = base): what `tune4j generate --adapter` prints. */
    synchronized long[] reference(String adapter, long[] ids, int maxTokens) {
        String key = adapter + "|" + Arrays.toString(ids) + "|" + maxTokens;
        return references.computeIfAbsent(key, k -> {
            try (ModelFolder f = ModelFolder.open(model); LlamaModel m = LlamaModel.load(f, Compute.cpu())) {
                LoraAdapter a = adapter == null ? null : LoraAdapter.load(root.resolve(adapter), m);
                try {
                    return Generator.generate(m, ids, new GenerationConfig(maxTokens, 0, 0, 1, 1, 0, eos, List.of()), null, null).tokens();
                } finally {
                    if (a != null) a.close();
                }
            }
        });
    }

    /** Without the end-of-sequence token (transformers keeps it in the ids; OpenAI's text does not show it). */
    long[] withoutEos(long[] ids) {
        return ids.length > 0 && eos.contains((int) ids[ids.length - 1]) ? Arrays.copyOf(ids, ids.length - 1) : ids;
    }
}
