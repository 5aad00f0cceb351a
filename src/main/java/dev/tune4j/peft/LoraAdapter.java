package dev.tune4j.peft;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.*;
import dev.tune4j.model.Linear;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * The LoRA modules attached to one model, and their files in PEFT's format: {@code adapter_config.json} (the LoraConfig
 * fields PEFT 0.12 writes) and {@code adapter_model.safetensors} with keys
 * {@code base_model.model.<module>.lora_A.weight} (r, in) and {@code .lora_B.weight} (out, r); a DoRA adapter
 * ({@code use_dora: true}) also has {@code base_model.model.<module>.lora_magnitude_vector} (out), with no {@code .weight}
 * suffix (PEFT 0.12 strips it on save).
 */
public final class LoraAdapter implements AutoCloseable {
    public static final String KEY_PREFIX = "base_model.model.";
    /** The file key's suffix of a DoRA magnitude vector. */
    public static final String MAGNITUDE = ".lora_magnitude_vector";
    static final String PREFIX = KEY_PREFIX;

    public final LoraConfig config;
    public final String baseModel;
    /** The name it is attached under on every projection ("default", as PEFT names a single adapter). */
    public final String name;
    private final LlamaModel model;
    private final LinkedHashMap<String, LoraLinear> modules;

    private LoraAdapter(String name, LoraConfig config, String baseModel, LlamaModel model, LinkedHashMap<String, LoraLinear> modules) {
        this.name = name;
        this.config = config;
        this.baseModel = baseModel;
        this.model = model;
        this.modules = modules;
        var linears = model.linears();
        modules.forEach((module, lora) -> linears.get(module).attach(name, lora));
    }

    /** "default", or "default_2", "default_3", … when the model already carries adapters of those names. */
    static String freeName(LlamaModel model) {
        var taken = new HashSet<String>();
        model.linears().values().forEach(l -> taken.addAll(l.adapters().keySet()));
        String n = "default";
        for (int i = 2; taken.contains(n); i++) n = "default_" + i;
        return n;
    }

    /**
     * New adapter with PEFT's initialisation: A ~ kaiming-uniform(a=√5) = U(−1/√in, 1/√in), B = 0, so the model is
     * unchanged until the first update; with DoRA, m = ‖W‖ per output row (from the dequantized weight for a 4-bit base).
     */
    public static LoraAdapter create(LlamaModel model, LoraConfig cfg, long seed, String baseModel) {
        return create(model, cfg, seed, baseModel, freeName(model));
    }

    public static LoraAdapter create(LlamaModel model, LoraConfig cfg, long seed, String baseModel, String name) {
        checkTargets(model, cfg, null);
        for (var e : model.linears().entrySet()) {
            Linear l = e.getValue();
            int r = cfg.r(e.getKey());
            if (cfg.targets(e.getKey()) && r > Math.min(l.inFeatures(), l.outFeatures()))
                throw new UserError("r=" + r + " is larger than module '" + e.getKey() + "' allows: it is " + l.outFeatures() + " x "
                        + l.inFeatures() + ", so r must be at most " + Math.min(l.inFeatures(), l.outFeatures()));
        }
        var mods = new LinkedHashMap<String, LoraLinear>();
        torch.manual_seed(seed);
        for (var e : model.linears().entrySet()) {
            if (!cfg.targets(e.getKey())) continue;
            Linear l = e.getValue();
            int r = cfg.r(e.getKey());
            double bound = 1 / Math.sqrt(l.inFeatures());
            Tensor a = Tensors.escape(() -> model.compute.placeTrainable(torch.empty(r, l.inFeatures()).uniform_(-bound, bound, new org.bytedeco.pytorch.GeneratorOptional())));
            Tensor b = Tensors.escape(() -> model.compute.placeTrainable(torch.zeros(l.outFeatures(), r)));
            Tensor m = !cfg.useDora() ? null : Tensors.escape(() -> {
                try (var ng = new org.bytedeco.pytorch.NoGradGuard()) { // ‖W + s·B@A‖ per row with B = 0
                    return model.compute.placeTrainable(l.denseWeight().to(torch.ScalarType.Float).norm(new org.bytedeco.pytorch.ScalarOptional(new org.bytedeco.pytorch.Scalar(2)), 1));
                }
            });
            mods.put(e.getKey(), new LoraLinear(name, a, b, m, cfg.scaling(e.getKey()), cfg.dropout()));
        }
        return new LoraAdapter(name, cfg, baseModel, model, mods);
    }

    /**
     * PEFT's "Target modules {...} not found in the base model", naming each target that matches no projection; also an
     * error when layers_to_transform leaves nothing. {@code file} (adapter_config.json) makes it an HfFormatException.
     */
    static void checkTargets(LlamaModel model, LoraConfig cfg, Path file) {
        var names = model.linears().keySet();
        String what = null;
        List<String> t = cfg.targetModules();
        boolean single = t.size() == 1 && (t.getFirst().equals(LoraConfig.ALL_LINEAR) || !t.getFirst().matches("[A-Za-z0-9_.]+"));
        var noLayers = new LoraConfig(cfg.r(), cfg.alpha(), cfg.dropout(), t, cfg.rslora());
        var missing = new ArrayList<String>();
        if (single) { if (names.stream().noneMatch(noLayers::targets)) missing.addAll(t); }
        else for (String x : t) if (names.stream().noneMatch(new LoraConfig(1, 1, 0, List.of(x), false)::targets)) missing.add(x);
        if (!missing.isEmpty())
            what = "target_modules " + missing + " not found in the base model " + model.config.arch().className + " (its projections look like model.layers.0.self_attn.q_proj"
                    + " and end in " + new TreeSet<>(names.stream().map(n -> n.substring(n.lastIndexOf('.') + 1)).toList()) + ")";
        else if (names.stream().noneMatch(cfg::targets))
            what = "layers_to_transform " + cfg.layersToTransform() + (cfg.layersPattern().isEmpty() ? "" : " with layers_pattern " + cfg.layersPattern())
                    + " leaves no module of target_modules " + t + " (the model has " + model.config.numLayers() + " layers)";
        if (what != null) throw file == null ? new UserError(what) : new HfFormatException(file, what);
    }

    /** Reads a PEFT LoRA adapter folder and attaches it; every mismatch with the model is an error naming the tensor. */
    public static LoraAdapter load(Path dir, LlamaModel model) {
        return load(dir, model, freeName(model));
    }

    public static LoraAdapter load(Path dir, LlamaModel model, String name) {
        Path cfgFile = dir.resolve("adapter_config.json");
        if (!Files.exists(cfgFile)) throw new HfFormatException(dir, "no adapter_config.json (not a PEFT adapter folder)");
        JsonNode c;
        try {
            c = new ObjectMapper().readTree(cfgFile.toFile());
        } catch (IOException e) {
            throw new HfFormatException(cfgFile, "not valid JSON: " + e.getMessage(), e);
        }
        if (!c.isObject()) throw new HfFormatException(cfgFile, "expected a JSON object, found " + c.getNodeType());
        var j = new Json(cfgFile, c);
        if (!"LORA".equals(j.str("peft_type", ""))) throw new HfFormatException(cfgFile, "peft_type: expected LORA, found " + c.path("peft_type"));
        if (j.bool("fan_in_fan_out", false)) throw new HfFormatException(cfgFile, "fan_in_fan_out=true is not supported");
        if (!j.str("bias", "none").equals("none")) throw new HfFormatException(cfgFile, "bias: only \"none\" is supported, found " + c.get("bias"));
        if (!j.strings("modules_to_save", false).isEmpty())
            throw new HfFormatException(cfgFile, "modules_to_save is not supported, found " + c.get("modules_to_save"));
        if (c.hasNonNull("layer_replication")) throw new HfFormatException(cfgFile, "layer_replication is not supported, found " + c.get("layer_replication"));
        j.bool("inference_mode", true);
        List<String> targets = j.strings("target_modules", true);
        LoraConfig cfg;
        try {
            cfg = new LoraConfig(j.integer("r", 8), j.num("lora_alpha", 8), j.num("lora_dropout", 0),
                    targets.isEmpty() ? List.of(LoraConfig.ALL_LINEAR) : targets, j.bool("use_rslora", false), j.bool("use_dora", false),
                    j.layers(), j.strings("layers_pattern", true), j.map("rank_pattern", true), j.map("alpha_pattern", false));
        } catch (HfFormatException e) {
            throw e; // already names the file
        } catch (IllegalArgumentException e) {
            throw new HfFormatException(cfgFile, e.getMessage());
        }
        checkTargets(model, cfg, cfgFile);
        String base = j.str("base_model_name_or_path", "");
        checkBase(dir, base, model);

        Path weights = dir.resolve("adapter_model.safetensors");
        if (!Files.exists(weights)) throw new HfFormatException(dir, "no adapter_model.safetensors");
        var linears = model.linears();
        var mods = new LinkedHashMap<String, LoraLinear>();
        try (Safetensors st = Safetensors.open(weights)) {
            var names = new TreeSet<String>();
            for (TensorInfo i : st.tensors()) {
                String n = i.name();
                if (n.startsWith(PREFIX) && n.endsWith(MAGNITUDE)) {
                    if (!cfg.useDora())
                        throw new HfFormatException(weights, "tensor '" + n + "' is a DoRA magnitude vector, but " + cfgFile.getFileName() + " says use_dora: false");
                    continue;
                }
                if (!n.startsWith(PREFIX) || !(n.endsWith(".lora_A.weight") || n.endsWith(".lora_B.weight")))
                    throw new HfFormatException(weights, "unexpected tensor '" + n + "': expected base_model.model.<module>.lora_A.weight / lora_B.weight"
                            + (cfg.useDora() ? " / lora_magnitude_vector" : ""));
                String module = n.substring(PREFIX.length(), n.length() - ".lora_A.weight".length());
                if (!linears.containsKey(module))
                    throw new HfFormatException(weights, "tensor '" + n + "' is for module '" + module + "', which " + model.config.arch().className + " does not have");
                if (!cfg.targets(module))
                    throw new HfFormatException(weights, "tensor '" + n + "' is for module '" + module + "', which " + cfgFile.getFileName()
                            + " does not select (target_modules " + cfg.targetModules() + (cfg.layersToTransform().isEmpty() ? "" : ", layers_to_transform " + cfg.layersToTransform()) + ")");
                names.add(module);
            }
            for (String module : names) {
                Linear l = linears.get(module);
                String ka = PREFIX + module + ".lora_A.weight", kb = PREFIX + module + ".lora_B.weight";
                if (!st.contains(ka) || !st.contains(kb)) throw new HfFormatException(weights, "module '" + module + "' needs both lora_A and lora_B");
                long[] sa = st.info(ka).shape(), sb = st.info(kb).shape();
                int r = cfg.r(module);
                String rs = r == cfg.r() ? "" : " (r from rank_pattern)";
                if (sa.length != 2 || sa[0] != r || sa[1] != l.inFeatures())
                    throw new HfFormatException(weights, "tensor '" + ka + "': expected shape [" + r + ", " + l.inFeatures() + "]" + rs + ", found " + Arrays.toString(sa));
                if (sb.length != 2 || sb[0] != l.outFeatures() || sb[1] != r)
                    throw new HfFormatException(weights, "tensor '" + kb + "': expected shape [" + l.outFeatures() + ", " + r + "]" + rs + ", found " + Arrays.toString(sb));
                float[] av = finite(st.floats(ka), weights, ka), bv = finite(st.floats(kb), weights, kb);
                Tensor a = Tensors.escape(() -> model.compute.placeTrainable(Tensors.floats(av, sa)));
                Tensor b = Tensors.escape(() -> model.compute.placeTrainable(Tensors.floats(bv, sb)));
                mods.put(module, new LoraLinear(name, a, b, cfg.useDora() ? magnitude(st, weights, module, l, cfgFile, model) : null, cfg.scaling(module), cfg.dropout()));
            }
            for (TensorInfo i : st.tensors())
                if (i.name().endsWith(MAGNITUDE) && !names.contains(i.name().substring(PREFIX.length(), i.name().length() - MAGNITUDE.length())))
                    throw new HfFormatException(weights, "tensor '" + i.name() + "' has no lora_A / lora_B beside it");
        }
        if (mods.isEmpty()) throw new HfFormatException(weights, "holds no LoRA tensors");
        return new LoraAdapter(name, cfg, base, model, mods);
    }

    /** DoRA: the module's magnitude vector (out), required for every module when use_dora is true. */
    private static Tensor magnitude(Safetensors st, Path weights, String module, Linear l, Path cfgFile, LlamaModel model) {
        String km = PREFIX + module + MAGNITUDE;
        if (!st.contains(km))
            throw new HfFormatException(weights, "module '" + module + "' has no '" + km + "', but " + cfgFile.getFileName() + " says use_dora: true (DoRA needs one per module)");
        long[] sm = st.info(km).shape();
        if (sm.length != 1 || sm[0] != l.outFeatures())
            throw new HfFormatException(weights, "tensor '" + km + "': expected shape [" + l.outFeatures() + "], found " + Arrays.toString(sm));
        float[] mv = finite(st.floats(km), weights, km);
        return Tensors.escape(() -> model.compute.placeTrainable(Tensors.floats(mv, sm)));
    }

    /** The values, when every one is finite; otherwise an error naming the tensor and the first bad element. */
    static float[] finite(float[] v, Path file, String tensor) {
        for (int i = 0; i < v.length; i++)
            if (!Float.isFinite(v[i])) throw new HfFormatException(file, "tensor '" + tensor + "' holds a non-finite value (" + v[i] + " at flat index " + i + ")");
        return v;
    }

    /** Typed reads of adapter_config.json: a key of the wrong JSON type is an error naming the key, expected and found (null or absent: default). */
    private record Json(Path file, JsonNode c) {
        private JsonNode get(String key) {
            JsonNode n = c.get(key);
            return n == null || n.isNull() ? null : n;
        }

        private HfFormatException wrong(String key, String expected, JsonNode found) {
            return new HfFormatException(file, "key '" + key + "': expected " + expected + ", found " + found + " (" + found.getNodeType().toString().toLowerCase(Locale.ROOT) + ")");
        }

        String str(String key, String dflt) {
            JsonNode n = get(key);
            if (n == null) return dflt;
            if (!n.isTextual()) throw wrong(key, "a string", n);
            return n.asText();
        }

        boolean bool(String key, boolean dflt) {
            JsonNode n = get(key);
            if (n == null) return dflt;
            if (!n.isBoolean()) throw wrong(key, "true or false", n);
            return n.asBoolean();
        }

        int integer(String key, int dflt) {
            JsonNode n = get(key);
            if (n == null) return dflt;
            if (!n.isIntegralNumber() || !n.canConvertToInt()) throw wrong(key, "an integer", n);
            return n.asInt();
        }

        double num(String key, double dflt) {
            JsonNode n = get(key);
            if (n == null) return dflt;
            if (!n.isNumber()) throw wrong(key, "a number", n);
            return n.asDouble();
        }

        /** A list of strings (or, where {@code single}, one string). */
        List<String> strings(String key, boolean single) {
            JsonNode n = get(key);
            var out = new ArrayList<String>();
            if (n == null) return out;
            if (single && n.isTextual()) out.add(n.asText());
            else if (n.isArray()) n.forEach(x -> { if (!x.isTextual()) throw wrong(key, "a list of strings", n); out.add(x.asText()); });
            else throw wrong(key, single ? "a string or a list of strings" : "a list of strings", n);
            return out;
        }

        /** layers_to_transform: one layer index or a list of them. */
        List<Integer> layers() {
            JsonNode n = get("layers_to_transform");
            var out = new ArrayList<Integer>();
            if (n == null) return out;
            if (n.isIntegralNumber() && n.canConvertToInt()) out.add(n.asInt());
            else if (n.isArray()) n.forEach(x -> { if (!x.isIntegralNumber() || !x.canConvertToInt()) throw wrong("layers_to_transform", "an integer or a list of integers", n); out.add(x.asInt()); });
            else throw wrong("layers_to_transform", "an integer or a list of integers", n);
            return out;
        }

        /** rank_pattern {key: int} or alpha_pattern {key: number}. */
        @SuppressWarnings("unchecked")
        <T> Map<String, T> map(String key, boolean ints) {
            JsonNode n = get(key);
            var out = new LinkedHashMap<String, T>();
            if (n == null) return out;
            String expected = "an object of {module: " + (ints ? "integer}" : "number}");
            if (!n.isObject()) throw wrong(key, expected, n);
            n.properties().forEach(e -> {
                JsonNode v = e.getValue();
                if (ints ? !(v.isIntegralNumber() && v.canConvertToInt()) : !v.isNumber()) throw wrong(key + "." + e.getKey(), ints ? "an integer" : "a number", v);
                try {
                    java.util.regex.Pattern.compile(e.getKey());
                } catch (java.util.regex.PatternSyntaxException x) {
                    throw new HfFormatException(file, "key '" + key + "': '" + e.getKey() + "' is not a valid pattern: " + x.getDescription());
                }
                out.put(e.getKey(), (T) (ints ? (Object) v.asInt() : (Object) v.asDouble()));
            });
            return out;
        }
    }

    /** When the adapter names a base folder we can find, its config must describe the model we attach to. */
    private static void checkBase(Path dir, String base, LlamaModel model) {
        if (base.isEmpty()) return;
        for (Path p : List.of(Path.of(base), dir.resolve(base))) {
            Path cfg = p.resolve("config.json");
            if (!Files.exists(cfg)) continue;
            ModelConfig theirs = ModelConfig.load(cfg);
            ModelConfig ours = model.config;
            if (theirs.arch() != ours.arch() || theirs.hiddenSize() != ours.hiddenSize() || theirs.numLayers() != ours.numLayers()
                    || theirs.intermediateSize() != ours.intermediateSize() || theirs.vocabSize() != ours.vocabSize())
                throw new HfFormatException(dir.resolve("adapter_config.json"), "base_model_name_or_path '" + base + "' is a "
                        + theirs.arch().className + " with hidden " + theirs.hiddenSize() + ", " + theirs.numLayers() + " layers; the model given is a "
                        + ours.arch().className + " with hidden " + ours.hiddenSize() + ", " + ours.numLayers() + " layers");
            return;
        }
    }

    /** Writes adapter_config.json, adapter_model.safetensors and README.md into {@code dir} (built beside it, then renamed). */
    public void save(Path dir) throws IOException {
        Path tmp = AtomicFiles.tempDirBeside(dir);
        try {
            var blobs = new LinkedHashMap<String, TensorBlob>();
            namedParameters().forEach((k, v) -> blobs.put(k, TensorBlob.ofFloats(Tensors.toFloats(v), Tensors.shape(v))));
            SafetensorsWriter.write(tmp.resolve("adapter_model.safetensors"), blobs, SafetensorsWriter.PT_METADATA);
            AtomicFiles.writeString(tmp.resolve("adapter_config.json"), PythonJson.dumps(peftConfig()));
            AtomicFiles.writeString(tmp.resolve("README.md"), "---\nbase_model: " + baseModel + "\nlibrary_name: peft\n---\n\n"
                    + (config.useDora() ? "DoRA" : "LoRA") + " adapter written by tune4j (PEFT format): r=" + config.r() + ", lora_alpha=" + config.alpha()
                    + ", target_modules=" + targetModulesForConfig() + ". Load with `PeftModel.from_pretrained(base, this_folder)`.\n");
            AtomicFiles.publishDir(tmp, dir);
        } finally {
            AtomicFiles.deleteTree(tmp);
        }
    }

    /** The fields and defaults of peft 0.12's LoraConfig, as save_pretrained writes them. */
    Map<String, Object> peftConfig() {
        var m = new LinkedHashMap<String, Object>();
        var alphas = new LinkedHashMap<String, Object>();
        config.alphaPattern().forEach((k, v) -> alphas.put(k, v == Math.rint(v) ? (Object) v.longValue() : v));
        m.put("alpha_pattern", alphas);
        m.put("auto_mapping", null);
        m.put("base_model_name_or_path", baseModel);
        m.put("bias", "none");
        m.put("fan_in_fan_out", false);
        m.put("inference_mode", true);
        m.put("init_lora_weights", true);
        m.put("layer_replication", null);
        m.put("layers_pattern", config.layersPattern().isEmpty() ? null : config.layersPattern().size() == 1 ? config.layersPattern().getFirst() : config.layersPattern());
        m.put("layers_to_transform", config.layersToTransform().isEmpty() ? null : config.layersToTransform());
        m.put("loftq_config", Map.of());
        m.put("lora_alpha", config.alpha() == Math.rint(config.alpha()) ? (Object) (long) config.alpha() : config.alpha());
        m.put("lora_dropout", config.dropout());
        m.put("megatron_config", null);
        m.put("megatron_core", "megatron.core");
        m.put("modules_to_save", null);
        m.put("peft_type", "LORA");
        m.put("r", config.r());
        m.put("rank_pattern", config.rankPattern());
        m.put("revision", null);
        m.put("target_modules", targetModulesForConfig());
        m.put("task_type", "CAUSAL_LM");
        m.put("use_dora", config.useDora());
        m.put("use_rslora", config.rslora());
        return m;
    }

    /** all-linear is saved expanded to the leaf names it matched (as PEFT does); a regex stays a string. */
    private Object targetModulesForConfig() {
        List<String> t = config.targetModules();
        if (t.size() == 1 && t.getFirst().equals(LoraConfig.ALL_LINEAR)) {
            var leaves = new TreeSet<String>();
            for (String m : modules.keySet()) leaves.add(m.substring(m.lastIndexOf('.') + 1));
            return new ArrayList<>(leaves);
        }
        if (t.size() == 1 && !t.getFirst().matches("[A-Za-z0-9_.]+")) return t.getFirst();
        return t;
    }

    /** lora_A / lora_B (and DoRA's lora_magnitude_vector) of every module under their PEFT file keys, in module order. */
    public LinkedHashMap<String, Tensor> namedParameters() {
        var m = new LinkedHashMap<String, Tensor>();
        modules.forEach((name, l) -> {
            m.put(PREFIX + name + ".lora_A.weight", l.lora_A);
            m.put(PREFIX + name + ".lora_B.weight", l.lora_B);
            if (l.dora()) m.put(PREFIX + name + MAGNITUDE, l.lora_magnitude_vector);
        });
        return m;
    }

    public List<Tensor> parameters() {
        return new ArrayList<>(namedParameters().values());
    }

    public long trainableParameterCount() {
        long n = 0;
        for (Tensor t : parameters()) n += t.numel();
        return n;
    }

    public Map<String, LoraLinear> modules() {
        return Collections.unmodifiableMap(modules);
    }

    /** Training mode turns on lora_dropout; gradients flow to A, B (and m) only (the base weights never require grad). */
    public void train(boolean on) {
        modules.values().forEach(l -> l.train(on));
    }

    /** Folds every update into its base weight (W += scaling·B@A; DoRA: W = (m/n)·(W + scaling·B@A)); the adapter then adds nothing. */
    public void merge() {
        var linears = model.linears();
        modules.forEach((name, l) -> l.merge(linears.get(name)));
    }

    /** Sets lora_dropout for further training (PEFT lets a loaded adapter train with another dropout). */
    public void setDropout(double p) {
        if (p < 0 || p >= 1) throw new UserError("lora_dropout must be in [0, 1), found " + p);
        modules.values().forEach(l -> l.dropout = p);
    }

    /** Switches this adapter off in every projection (the base alone computes) or on again; its weights are untouched. */
    public void enable(boolean on) {
        var linears = model.linears();
        modules.forEach((module, l) -> { if (!l.merged()) linears.get(module).enable(name, on); });
    }

    /** Scales this adapter's contribution (for weighted combinations of several adapters); 1 by default. */
    public void setWeight(double w) {
        modules.values().forEach(l -> l.weight = w);
    }

    /** merge() and then drop the adapter for good: the base weights keep the update (PEFT's merge_and_unload). */
    public void mergeAndUnload() {
        merge();
        modules.values().forEach(LoraLinear::close);
        modules.clear();
    }

    public void unmerge() {
        modules.values().forEach(LoraLinear::unmerge);
    }

    /** Removes the adapter from the model (unmerging first if needed) and frees its tensors. */
    @Override
    public void close() {
        var linears = model.linears();
        modules.forEach((name, l) -> {
            if (l.merged()) l.unmerge();
            linears.get(name).detach(this.name);
            l.close();
        });
        modules.clear();
    }
}
