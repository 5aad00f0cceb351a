package dev.tune4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tune4j.generate.AdapterSource;
import dev.tune4j.hf.UserError;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.text.ChatTemplate;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * The adapters a server knows by name: from --lora-modules, from /v1/load_lora_adapter, or found as
 * {@code <adapter-root>/<name>} on first use (vLLM's filesystem resolver). It is the engine's {@link AdapterSource}: the
 * engine asks it to load a name onto the model when a request needs it. Paths a client sends are confined to the adapter
 * root: normalised, symlinks resolved, prefix-checked against the root's real path.
 */
final class Adapters implements AdapterSource {
    /** One path component of plain characters: no separators, no "..", no NUL or control characters, bounded. */
    static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    /** A registered adapter: its folder (a real path), rank and targets from adapter_config.json, its own chat template. */
    record Entry(String name, Path dir, int rank, List<String> targets, ChatTemplate chatTemplate) {}

    private final Path root; // real path, or null without --adapter-root
    private final int maxRank;
    private final Map<String, Entry> entries = new ConcurrentHashMap<>();

    /** @param modules --lora-modules (name → folder, trusted: the operator's own paths) */
    Adapters(Path root, int maxRank, Map<String, Path> modules) throws IOException {
        this.root = root == null ? null : root.toRealPath();
        if (this.root != null && !Files.isDirectory(this.root)) throw new UserError("--adapter-root: expected a folder, found a file: " + root);
        this.maxRank = maxRank;
        modules.forEach((name, dir) -> {
            if (!NAME.matcher(name).matches()) throw new UserError("--lora-modules: " + badName(name));
            try {
                entries.put(name, read(name, dir.toRealPath()));
            } catch (IOException e) {
                throw new UserError("--lora-modules " + name + "=" + dir + ": no such folder");
            } catch (ApiError e) {
                throw new UserError("--lora-modules " + name + "=" + dir + ": " + e.getMessage());
            }
        });
    }

    static String badName(String name) {
        return "expected an adapter name of 1 to 128 letters, digits, '.', '_' or '-' (not starting with '.', '_' or '-'), found '"
                + Body.clip(name.replaceAll("\\p{Cntrl}", "?")) + "'";
    }

    /** The adapter called name: registered, or {@code <root>/<name>} registered now; empty when there is none. */
    Optional<Entry> find(String name) {
        Entry e = entries.get(name);
        if (e != null || root == null || !NAME.matcher(name).matches()) return Optional.ofNullable(e);
        Path real;
        try {
            real = confined(name, "model");
        } catch (ApiError missing) {
            if (missing.status == 404) return Optional.empty();
            throw missing;
        }
        if (!Files.isRegularFile(real.resolve("adapter_config.json"))) return Optional.empty();
        return Optional.of(entries.computeIfAbsent(name, n -> read(n, real)));
    }

    /**
     * A client's lora_path as a real folder inside the adapter root: relative paths are taken from the root; the lexical
     * check comes first, so nothing outside the root is even looked at, and the real path (symlinks resolved) is checked again.
     */
    Path confined(String path, String param) {
        if (root == null) throw new ApiError(400, "invalid_request_error", param, null, param + ": loading adapters by path needs the server started with --adapter-root");
        if (path.isEmpty() || path.length() > 4096 || path.chars().anyMatch(c -> c < 0x20))
            throw ApiError.invalid(param, param + ": expected a folder under the adapter root, found '" + Body.clip(path.replaceAll("\\p{Cntrl}", "?")) + "'");
        Path p;
        try {
            p = root.resolve(path).normalize();
        } catch (java.nio.file.InvalidPathException e) {
            throw ApiError.invalid(param, param + ": not a valid path");
        }
        if (!p.startsWith(root) || p.equals(root)) throw outside(param);
        Path real;
        try {
            real = p.toRealPath();
        } catch (IOException e) {
            throw ApiError.notFound(param, null, "No adapter found at " + param + " '" + root.relativize(p) + "' (under the adapter root).");
        }
        if (!real.startsWith(root) || real.equals(root)) throw outside(param);
        if (!Files.isDirectory(real, LinkOption.NOFOLLOW_LINKS)) throw ApiError.notFound(param, null, "No adapter found at '" + root.relativize(p) + "': not a folder.");
        return real;
    }

    private static ApiError outside(String param) {
        return ApiError.invalid(param, param + ": the path leaves the adapter root (after resolving '..' and symbolic links); only folders under --adapter-root can be loaded");
    }

    /** Registers name → dir (load_inplace replaces an existing one). @return false when the name exists and replace is off */
    boolean register(String name, Path realDir, boolean replace) {
        Entry e = read(name, realDir);
        if (replace) {
            entries.put(name, e);
            return true;
        }
        return entries.putIfAbsent(name, e) == null;
    }

    boolean unregister(String name) {
        return entries.remove(name) != null;
    }

    List<Entry> list() {
        return entries.values().stream().sorted(Comparator.comparing(Entry::name)).toList();
    }

    /** Reads adapter_config.json's rank (the largest of r and rank_pattern) and targets, and the folder's chat template. */
    Entry read(String name, Path dir) {
        Path cfg = dir.resolve("adapter_config.json");
        JsonNode c;
        try {
            c = Body.JSON.readTree(cfg.toFile());
        } catch (IOException e) {
            throw ApiError.invalid("lora_path", cfg.getFileName() + " of adapter '" + name + "': " + (Files.exists(cfg) ? "not valid JSON" : "missing (not a PEFT adapter folder)"));
        }
        int rank = c.path("r").asInt(8);
        for (JsonNode r : c.path("rank_pattern")) rank = Math.max(rank, r.asInt());
        if (rank > maxRank)
            throw ApiError.invalid("lora_path", "adapter '" + name + "' has rank " + rank + ", above --max-lora-rank " + maxRank);
        var targets = new ArrayList<String>();
        JsonNode t = c.path("target_modules");
        if (t.isTextual()) targets.add(t.asText());
        else t.forEach(x -> targets.add(x.asText()));
        return new Entry(name, dir, rank, targets, chatTemplate(dir));
    }

    /** An adapter folder's own chat template: chat_template.jinja, else tokenizer_config.json's chat_template. */
    static ChatTemplate chatTemplate(Path dir) {
        try {
            Path jinja = dir.resolve("chat_template.jinja");
            if (Files.isRegularFile(jinja)) return ChatTemplate.parse(Files.readString(jinja), jinja.toString());
            Path tc = dir.resolve("tokenizer_config.json");
            if (!Files.isRegularFile(tc)) return null;
            JsonNode ct = Body.JSON.readTree(tc.toFile()).path("chat_template");
            return ct.isTextual() ? ChatTemplate.parse(ct.asText(), tc + " chat_template") : null;
        } catch (IOException e) {
            throw ApiError.invalid("lora_path", dir.getFileName() + ": its chat template could not be read: " + e.getMessage());
        }
    }

    @Override
    public void attach(LlamaModel model, String name) {
        Entry e = entries.get(name);
        if (e == null) throw new UserError("adapter '" + name + "' is not registered (unloaded meanwhile?)");
        LoraAdapter.load(e.dir(), model, name); // attached to the model's projections; the engine detaches and frees it on eviction
    }
}
