package dev.tune4j.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * A Hugging Face model folder: config.json plus {@code model.safetensors} or shards listed in
 * {@code model.safetensors.index.json}. Tensors are looked up by name across shards; all files stay mapped until close.
 * close() unmaps them and may come early: dir, config and tensor infos stay readable, and a second close does nothing.
 * Callers close as soon as the weights are copied out, because a mapping's touched pages count in the process's RSS
 * (the whole folder: 942 MiB for Qwen2.5-0.5B in bf16) for as long as it lives.
 */
public final class ModelFolder implements AutoCloseable {
    private final Path dir;
    private final ModelConfig config;
    private final List<Safetensors> files = new ArrayList<>();
    private final Map<String, Safetensors> byName = new LinkedHashMap<>();
    private final boolean fourBit;

    private ModelFolder(Path dir, ModelConfig config) {
        this.dir = dir;
        this.config = config;
        this.fourBit = readFourBit(dir.resolve("config.json"));
    }

    public static ModelFolder open(Path dir) {
        if (!Files.isDirectory(dir)) throw new HfFormatException(dir, "not a model folder (expected a directory with config.json and safetensors)");
        Path cfg = dir.resolve("config.json");
        if (!Files.exists(cfg)) throw new HfFormatException(dir, "no config.json");
        ModelFolder f = new ModelFolder(dir, ModelConfig.load(cfg));
        try {
            f.openWeights();
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
        return f;
    }

    private void openWeights() {
        Path single = dir.resolve("model.safetensors");
        Path index = dir.resolve("model.safetensors.index.json");
        if (Files.exists(single)) {
            add(Safetensors.open(single));
        } else if (Files.exists(index)) {
            JsonNode map;
            try {
                map = new ObjectMapper().readTree(Files.readString(index)).path("weight_map");
            } catch (IOException e) {
                throw new HfFormatException(index, "cannot read index: " + e.getMessage(), e);
            }
            if (!map.isObject()) throw new HfFormatException(index, "expected an object 'weight_map' of tensor name -> shard file");
            var shardNames = new TreeSet<String>();
            map.properties().forEach(e -> shardNames.add(e.getValue().asText()));
            var shards = new HashMap<String, Safetensors>();
            for (String s : shardNames) {
                Path p = dir.resolve(s).normalize();
                if (!p.startsWith(dir.normalize()) || !Files.exists(p))
                    throw new HfFormatException(index, "weight_map names shard '" + s + "', which is not in " + dir);
                Safetensors st = Safetensors.open(p);
                files.add(st);
                shards.put(s, st);
            }
            for (var it = map.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                Safetensors st = shards.get(e.getValue().asText());
                if (!st.contains(e.getKey()))
                    throw new HfFormatException(index, "weight_map puts tensor '" + e.getKey() + "' in " + e.getValue().asText() + ", which does not hold it");
                byName.put(e.getKey(), st);
            }
        } else {
            throw new HfFormatException(dir, "no model.safetensors or model.safetensors.index.json");
        }
    }

    private void add(Safetensors st) {
        files.add(st);
        for (TensorInfo t : st.tensors()) byName.put(t.name(), st);
    }

    public Path dir() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    public Set<String> names() {
        return Collections.unmodifiableSet(byName.keySet());
    }

    public TensorInfo info(String name) {
        Safetensors st = byName.get(name);
        if (st == null) throw new HfFormatException(dir, "missing tensor '" + name + "'");
        return st.info(name);
    }

    public float[] floats(String name) {
        info(name);
        return byName.get(name).floats(name);
    }

    /**
     * Checks the folder against {@link ModelConfig#expectedTensors()}: every expected tensor present with its shape, and
     * nothing unexpected (a stored {@code lm_head.weight} of a tied model and old {@code rotary_emb.inv_freq} buffers are
     * tolerated, as transformers does). Errors name the tensor, the expected and the found shape.
     */
    public void validate() {
        var expected = config.expectedTensors();
        boolean fourBit = bitsandbytes4bit();
        for (var e : expected.entrySet()) {
            Safetensors st = byName.get(e.getKey());
            if (st == null) throw new HfFormatException(dir, "missing tensor '" + e.getKey() + "' (expected shape " + Arrays.toString(e.getValue()) + ")");
            TensorInfo t = st.info(e.getKey());
            if (fourBit && isProjectionWeight(e.getKey())) { // packed 4-bit codes: [(out·in + 1) / 2, 1] uint8
                long n = e.getValue()[0] * e.getValue()[1];
                if (t.dtype() != DType.U8 || t.numel() != (n + 1) / 2)
                    throw new HfFormatException(st.file(), "tensor '" + e.getKey() + "': expected " + (n + 1) / 2 + " packed uint8 bytes (4-bit "
                            + Arrays.toString(e.getValue()) + "), found " + t);
                continue;
            }
            if (!Arrays.equals(t.shape(), e.getValue()))
                throw new HfFormatException(st.file(), "tensor '" + e.getKey() + "': expected shape " + Arrays.toString(e.getValue())
                        + ", found " + Arrays.toString(t.shape()));
            if (t.dtype() == DType.BOOL)
                throw new HfFormatException(st.file(), "tensor '" + e.getKey() + "': expected a float dtype, found BOOL");
        }
        for (String n : byName.keySet()) {
            if (expected.containsKey(n) || n.endsWith("rotary_emb.inv_freq") || (config.tieWordEmbeddings() && n.equals("lm_head.weight"))) continue;
            if (fourBit && isQuantCompanion(n)) continue;
            throw new HfFormatException(byName.get(n).file(), "unexpected tensor '" + n + "' for " + config.arch().className
                    + " with " + config.numLayers() + " layers");
        }
    }

    /** Whether config.json says this is a bitsandbytes 4-bit checkpoint (quantization_config, load_in_4bit). */
    public boolean bitsandbytes4bit() {
        return fourBit;
    }

    private static boolean readFourBit(Path configJson) {
        try {
            JsonNode q = new ObjectMapper().readTree(configJson.toFile()).path("quantization_config");
            return q.path("quant_method").asText().equals("bitsandbytes") && q.path("load_in_4bit").asBoolean(false);
        } catch (IOException e) {
            throw new HfFormatException(configJson, "cannot read: " + e.getMessage(), e);
        }
    }

    /** The decoder projections (what bitsandbytes quantizes): model.layers.N.{self_attn,mlp}.*_proj.weight. */
    public static boolean isProjectionWeight(String name) {
        return name.startsWith("model.layers.") && name.endsWith("_proj.weight");
    }

    static boolean isQuantCompanion(String n) {
        return n.endsWith(".absmax") || n.endsWith(".quant_map") || n.endsWith(".nested_absmax") || n.endsWith(".nested_quant_map")
                || n.contains(".quant_state.bitsandbytes__");
    }

    /** The safetensors file holding a tensor (for readers of extra entries such as quantization states). */
    public Safetensors fileOf(String name) {
        Safetensors st = byName.get(name);
        if (st == null) throw new HfFormatException(dir, "missing tensor '" + name + "'");
        return st;
    }

    /** Storage dtypes in this folder, with tensor counts (for inspect). */
    public Map<DType, Long> dtypeCounts() {
        var m = new TreeMap<DType, Long>();
        for (String n : byName.keySet()) m.merge(info(n).dtype(), 1L, Long::sum);
        return m;
    }

    public long totalBytes() {
        long b = 0;
        for (String n : byName.keySet()) b += info(n).byteSize();
        return b;
    }

    @Override
    public void close() {
        for (Safetensors s : files) s.close();
        files.clear();
    }
}
