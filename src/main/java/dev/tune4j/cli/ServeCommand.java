package dev.tune4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.UserError;
import dev.tune4j.serve.ServeConfig;
import dev.tune4j.serve.Server;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** An OpenAI-compatible server: one base model, many LoRA adapters, vLLM's flag names, defaults and endpoints. */
@Command(name = "serve", mixinStandardHelpOptions = true, description = "Serve a model and LoRA adapters over an OpenAI-compatible HTTP API "
        + "(/v1/models, /v1/completions, /v1/chat/completions, /health, /metrics; vLLM's flags). SIGTERM stops gracefully.")
final class ServeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "model folder (dense, merged or bitsandbytes 4-bit)")
    Path model;

    @Option(names = "--served-model-name", description = "the base model's name in the API (default: --model as given)")
    String servedModelName;

    @Option(names = "--lora-modules", arity = "1..*", description = "adapters to serve: name=DIR or {\"name\": ..., \"path\": ...} (repeatable)")
    List<String> loraModules = new ArrayList<>();

    @Option(names = "--adapter-root", description = "folder of adapter folders: `model` names a sub-folder on first use; runtime loading reads only here")
    Path adapterRoot;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "address to bind (default ${DEFAULT-VALUE}: this machine only)")
    String host;

    @Option(names = "--port", defaultValue = "8000", description = "port (default ${DEFAULT-VALUE}; 0 = any free port)")
    int port;

    @Option(names = "--api-key", description = "require 'Authorization: Bearer KEY' on /v1/ routes (default: $TUNE4J_API_KEY, else none)")
    String apiKey;

    @Option(names = "--allow-runtime-lora-updating", description = "enable /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING)")
    boolean allowRuntimeLoraUpdating;

    @Option(names = "--max-loras", defaultValue = "1", description = "adapters in one batch (default ${DEFAULT-VALUE})")
    int maxLoras;

    @Option(names = "--max-cpu-loras", description = "adapters kept loaded, least recently used evicted (default: --max-loras)")
    Integer maxCpuLoras;

    @Option(names = "--max-lora-rank", defaultValue = "16", description = "largest adapter rank accepted: 1, 8, 16, 32, 64, 128, 256, 320 or 512 (default ${DEFAULT-VALUE})")
    int maxLoraRank;

    @Option(names = "--max-num-seqs", defaultValue = "256", description = "sequences decoded together (default ${DEFAULT-VALUE})")
    int maxNumSeqs;

    @Option(names = "--max-model-len", description = "prompt + completion tokens per request (default: the model's max_position_embeddings)")
    Integer maxModelLen;

    @Option(names = "--max-queued-requests", description = "requests waiting for a slot before 429 Too Many Requests (default: --max-num-seqs)")
    Integer maxQueued;

    @Option(names = "--shutdown-grace", defaultValue = "30", description = "seconds in-flight requests may finish after SIGTERM (default ${DEFAULT-VALUE})")
    int shutdownGrace;

    @Override
    public Integer call() throws Exception {
        Map<String, Path> modules = modules(loraModules);
        Limits.nonNegative("--shutdown-grace", shutdownGrace);
        if (maxQueued != null) Limits.nonNegative("--max-queued-requests", maxQueued);
        String key = apiKey != null ? apiKey : System.getenv("TUNE4J_API_KEY");
        ServeConfig check = config(modules, key, 2); // every flag checked before the model is loaded
        LoadedModel lm = LoadedModel.open(model);
        Server server;
        try {
            int ctx = lm.model().config.maxPositionEmbeddings();
            int len = maxModelLen == null ? ctx : (int) Limits.inRange("--max-model-len", maxModelLen, 2, ctx, "the model's max_position_embeddings");
            server = Server.start(config(modules, key, len), lm.model(), lm.requireTokenizer(), lm.eosIds());
        } catch (Exception e) {
            lm.close();
            throw e;
        }
        var done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> { // SIGTERM / Ctrl-C: finish or cancel in-flight requests, free the model
            System.err.println("tune4j serve: shutting down (in-flight requests have " + shutdownGrace + " s to finish)");
            server.close();
            lm.close();
            done.countDown();
        }, "serve-shutdown"));
        System.out.println("tune4j serve: " + check.servedModelName() + (modules.isEmpty() ? "" : " + adapters " + modules.keySet())
                + " at " + server.url() + "/v1" + (key != null ? " (API key required)" : ""));
        System.out.flush();
        done.await();
        return 0;
    }

    /** ServeConfig checks each flag and throws a UserError naming it (exit 2). */
    private ServeConfig config(Map<String, Path> modules, String key, int len) {
        return new ServeConfig(servedModelName != null ? servedModelName : model.toString(), model.toAbsolutePath().toString(), modules, adapterRoot,
                host, port, key, allowRuntimeLoraUpdating, maxLoras, maxCpuLoras != null ? maxCpuLoras : maxLoras, maxLoraRank, maxNumSeqs, len,
                maxQueued != null ? maxQueued : maxNumSeqs, 8L << 20, Duration.ofSeconds(shutdownGrace));
    }

    /** vLLM's two spellings: name=DIR, or a JSON object {"name", "path"} (base_model_name must be the served model if given). */
    static Map<String, Path> modules(List<String> specs) {
        var out = new LinkedHashMap<String, Path>();
        for (String s : specs) {
            String name, path;
            if (s.strip().startsWith("{")) {
                try {
                    JsonNode j = new ObjectMapper().readTree(s);
                    name = j.path("name").asText("");
                    path = j.path("path").asText("");
                } catch (Exception e) {
                    throw new UserError("--lora-modules: expected name=DIR or a JSON object {\"name\", \"path\"}, found '" + s + "'");
                }
            } else {
                int eq = s.indexOf('=');
                name = eq < 0 ? "" : s.substring(0, eq);
                path = eq < 0 ? "" : s.substring(eq + 1);
            }
            if (name.isEmpty() || path.isEmpty()) throw new UserError("--lora-modules: expected name=DIR or a JSON object {\"name\", \"path\"}, found '" + s + "'");
            if (out.put(name, Path.of(path)) != null) throw new UserError("--lora-modules: the name '" + name + "' is given twice");
        }
        return out;
    }
}
