package dev.tune4j.peft;

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
        var mods = new LinkedHashMap<String, LoraLinear>();
        torch.manual_seed(seed);
        for (var e : model.linears().entrySet()) {
            if (!cfg.targets(e.getKey())) continue;
            Linear l = e.getValue();
            double bound = 1 / Math.sqrt(l.inFeatures());
            Tensor a = Tensors.escape(() -> model.compute.placeTrainable(torch.empty(cfg.r(), l.inFeatures()).uniform_(-bound, bound, new org.bytedeco.pytorch.GeneratorOptional())));
            Tensor b = Tensors.escape(() -> model.compute.placeTrainable(torch.zeros(l.outFeatures(), cfg.r())));
            Tensor m = !cfg.useDora() ? null : Tensors.escape(() -> {
                try (var ng = new org.bytedeco.pytorch.NoGradGuard()) { // ‖W + s·B@A‖ per row with B = 0
                    return model.compute.placeTrainable(l.denseWeight().to(torch.ScalarType.Float).norm(new org.bytedeco.pytorch.ScalarOptional(new org.bytedeco.pytorch.Scalar(2)), 1));
                }
            });
            mods.put(e.getKey(), new LoraLinear(name, a, b, m, cfg.scaling(), cfg.dropout()));
        }
        if (mods.isEmpty())
            throw new IllegalArgumentException("target_modules " + cfg.targetModules() + " match no projection of " + model.config.arch().className
                    + " (names look like model.layers.0.self_attn.q_proj)");
        return new LoraAdapter(name, cfg, baseModel, model, mods);
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
        if (!"LORA".equals(c.path("peft_type").asText())) throw new HfFormatException(cfgFile, "peft_type: expected LORA, found " + c.path("peft_type"));
        if (c.path("fan_in_fan_out").asBoolean(false)) throw new HfFormatException(cfgFile, "fan_in_fan_out=true is not supported");
        if (!c.path("bias").asText("none").equals("none")) throw new HfFormatException(cfgFile, "bias: only \"none\" is supported, found " + c.get("bias"));
        if (c.hasNonNull("modules_to_save") && !c.get("modules_to_save").isEmpty())
            throw new HfFormatException(cfgFile, "modules_to_save is not supported, found " + c.get("modules_to_save"));
        if (!c.path("alpha_pattern").isEmpty() || !c.path("rank_pattern").isEmpty())
            throw new HfFormatException(cfgFile, "rank_pattern/alpha_pattern are not supported");
        var targets = new ArrayList<String>();
        JsonNode t = c.path("target_modules");
        if (t.isArray()) t.forEach(x -> targets.add(x.asText()));
        else if (t.isTextual()) targets.add(t.asText());
        LoraConfig cfg;
        try {
            cfg = new LoraConfig(c.path("r").asInt(8), c.path("lora_alpha").asDouble(8), c.path("lora_dropout").asDouble(0),
                    targets.isEmpty() ? List.of(LoraConfig.ALL_LINEAR) : targets, c.path("use_rslora").asBoolean(false),
                    c.path("use_dora").asBoolean(false));
        } catch (IllegalArgumentException e) {
            throw new HfFormatException(cfgFile, e.getMessage());
        }
        String base = c.path("base_model_name_or_path").asText("");
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
                names.add(module);
            }
            for (String module : names) {
                Linear l = linears.get(module);
                String ka = PREFIX + module + ".lora_A.weight", kb = PREFIX + module + ".lora_B.weight";
                if (!st.contains(ka) || !st.contains(kb)) throw new HfFormatException(weights, "module '" + module + "' needs both lora_A and lora_B");
                long[] sa = st.info(ka).shape(), sb = st.info(kb).shape();
                if (sa.length != 2 || sa[0] != cfg.r() || sa[1] != l.inFeatures())
                    throw new HfFormatException(weights, "tensor '" + ka + "': expected shape [" + cfg.r() + ", " + l.inFeatures() + "], found " + Arrays.toString(sa));
                if (sb.length != 2 || sb[0] != l.outFeatures() || sb[1] != cfg.r())
                    throw new HfFormatException(weights, "tensor '" + kb + "': expected shape [" + l.outFeatures() + ", " + cfg.r() + "], found " + Arrays.toString(sb));
                float[] av = st.floats(ka), bv = st.floats(kb);
                Tensor a = Tensors.escape(() -> model.compute.placeTrainable(Tensors.floats(av, sa)));
                Tensor b = Tensors.escape(() -> model.compute.placeTrainable(Tensors.floats(bv, sb)));
                mods.put(module, new LoraLinear(name, a, b, cfg.useDora() ? magnitude(st, weights, module, l, cfgFile, model) : null, cfg.scaling(), cfg.dropout()));
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
        float[] mv = st.floats(km);
        return Tensors.escape(() -> model.compute.placeTrainable(Tensors.floats(mv, sm)));
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
        m.put("alpha_pattern", Map.of());
        m.put("auto_mapping", null);
        m.put("base_model_name_or_path", baseModel);
        m.put("bias", "none");
        m.put("fan_in_fan_out", false);
        m.put("inference_mode", true);
        m.put("init_lora_weights", true);
        m.put("layer_replication", null);
        m.put("layers_pattern", null);
        m.put("layers_to_transform", null);
        m.put("loftq_config", Map.of());
        m.put("lora_alpha", config.alpha() == Math.rint(config.alpha()) ? (Object) (long) config.alpha() : config.alpha());
        m.put("lora_dropout", config.dropout());
        m.put("megatron_config", null);
        m.put("megatron_core", "megatron.core");
        m.put("modules_to_save", null);
        m.put("peft_type", "LORA");
        m.put("r", config.r());
        m.put("rank_pattern", Map.of());
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
        modules.values().forEach(l -> l.training = on);
    }

    /** Folds every update into its base weight (W += scaling·B@A; DoRA: W = (m/n)·(W + scaling·B@A)); the adapter then adds nothing. */
    public void merge() {
        var linears = model.linears();
        modules.forEach((name, l) -> l.merge(linears.get(name)));
    }

    /** Sets lora_dropout for further training (PEFT lets a loaded adapter train with another dropout). */
    public void setDropout(double p) {
        if (p < 0 || p >= 1) throw new IllegalArgumentException("lora_dropout must be in [0, 1), found " + p);
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
