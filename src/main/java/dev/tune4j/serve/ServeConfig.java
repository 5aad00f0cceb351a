package dev.tune4j.serve;

import dev.tune4j.hf.UserError;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Set;

/**
 * What {@code tune4j serve} is told, with vLLM's flag names and meanings (the CLI maps flags onto it one to one).
 *
 * @param servedModelName   the base model's name in the API (vLLM: --served-model-name, default the --model argument)
 * @param modelRoot         /v1/models' {@code root} for the base
 * @param loraModules       --lora-modules name=DIR, the operator's adapters (not confined to the adapter root)
 * @param adapterRoot       --adapter-root: folder whose sub-folders are adapters by name; the only place runtime loading reads; may be null
 * @param maxLoras          --max-loras: adapters in one batch (vLLM default 1)
 * @param maxCpuLoras       --max-cpu-loras: adapters kept loaded in host memory, LRU (≥ maxLoras; default maxLoras)
 * @param maxLoraRank       --max-lora-rank: adapters of higher rank are refused (vLLM's allowed values, default 16)
 * @param maxNumSeqs        --max-num-seqs: sequences decoded together
 * @param maxModelLen       --max-model-len: prompt + completion tokens of one request
 * @param maxQueued         --max-queued-requests: requests waiting for a batch slot before 429
 * @param maxRequestBytes   request bodies above this size are refused with 413
 * @param shutdownGrace     how long in-flight requests may finish after SIGTERM before they are cancelled
 */
public record ServeConfig(String servedModelName, String modelRoot, Map<String, Path> loraModules, Path adapterRoot, String host, int port,
                          String apiKey, boolean allowRuntimeLoraUpdating, int maxLoras, int maxCpuLoras, int maxLoraRank, int maxNumSeqs,
                          int maxModelLen, int maxQueued, long maxRequestBytes, Duration shutdownGrace) {
    /** vLLM's --max-lora-rank choices. */
    public static final Set<Integer> LORA_RANKS = Set.of(1, 8, 16, 32, 64, 128, 256, 320, 512);

    public ServeConfig {
        loraModules = Map.copyOf(loraModules);
        require(port >= 0 && port <= 65535, "--port", "an integer in [0, 65535]", port);
        require(maxLoras >= 1, "--max-loras", "an integer >= 1", maxLoras);
        require(maxCpuLoras >= maxLoras, "--max-cpu-loras", "an integer >= --max-loras (" + maxLoras + ")", maxCpuLoras);
        require(LORA_RANKS.contains(maxLoraRank), "--max-lora-rank", "one of " + new java.util.TreeSet<>(LORA_RANKS), maxLoraRank);
        require(maxNumSeqs >= 1, "--max-num-seqs", "an integer >= 1", maxNumSeqs);
        require(maxModelLen >= 2, "--max-model-len", "an integer >= 2", maxModelLen);
        require(maxQueued >= 0, "--max-queued-requests", "an integer >= 0", maxQueued);
        require(maxRequestBytes >= 1024 && maxRequestBytes <= 1L << 30, "max request bytes", "1 KiB to 1 GiB", maxRequestBytes);
        require(apiKey == null || !apiKey.isEmpty(), "--api-key", "a non-empty key", "''");
        require(!shutdownGrace.isNegative(), "--shutdown-grace", "a duration >= 0", shutdownGrace);
        if (servedModelName == null || servedModelName.isEmpty()) throw new UserError("--served-model-name: expected a non-empty name");
    }

    /** A config with vLLM's defaults for everything but the model (port 0 = any free port, for tests and embedding). */
    public static ServeConfig defaults(String servedModelName, String modelRoot, int maxModelLen) {
        return new ServeConfig(servedModelName, modelRoot, Map.of(), null, "127.0.0.1", 8000, null, false, 1, 1, 16, 256,
                maxModelLen, 256, 8L << 20, Duration.ofSeconds(30));
    }

    private static void require(boolean ok, String flag, String expected, Object found) {
        if (!ok) throw new UserError(flag + ": expected " + expected + ", found " + found);
    }
}
