package dev.tune4j.peft;

import dev.tune4j.hf.UserError;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * LoRA hyper-parameters with PEFT's meaning and names.
 *
 * @param r             rank of the update (PEFT default 8)
 * @param alpha         lora_alpha; the update is scaled by alpha / r, or alpha / √r with rsLoRA (default 16)
 * @param dropout       lora_dropout on the adapter's input while training (default 0.05)
 * @param targetModules module names or suffixes ("q_proj"), or one Python regex matched against the full module name,
 *                      or "all-linear" (every projection except lm_head). Default all-linear.
 * @param rslora        use_rslora: scale by alpha / √r (default false)
 * @param useDora       use_dora: DoRA, a trainable magnitude per output row on top of the LoRA direction (default false)
 * @param layersToTransform layers_to_transform: only these layer indices get the adapter (empty: all)
 * @param layersPattern layers_pattern: the name(s) before the layer index ("layers"); empty: any
 * @param rankPattern   rank_pattern: {key: r} for modules whose name matches ".*\.key" (PEFT's re.match)
 * @param alphaPattern  alpha_pattern: {key: lora_alpha} likewise
 */
public record LoraConfig(int r, double alpha, double dropout, List<String> targetModules, boolean rslora, boolean useDora,
                         List<Integer> layersToTransform, List<String> layersPattern, Map<String, Integer> rankPattern, Map<String, Double> alphaPattern) {
    public static final String ALL_LINEAR = "all-linear";
    private static final Pattern ANY_LAYER = Pattern.compile(".*\\.[^.]*\\.(\\d+)\\..*");

    public LoraConfig {
        if (r <= 0) throw new UserError("r must be positive, found " + r);
        layersToTransform = List.copyOf(layersToTransform);
        layersPattern = List.copyOf(layersPattern);
        rankPattern = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(rankPattern));
        alphaPattern = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(alphaPattern));
        rankPattern.forEach((k, v) -> { if (v <= 0) throw new UserError("rank_pattern['" + k + "'] must be positive, found " + v); });
        alphaPattern.forEach((k, v) -> { if (!(v > 0)) throw new UserError("alpha_pattern['" + k + "'] must be positive, found " + v); });
        if (!layersPattern.isEmpty() && layersToTransform.isEmpty())
            throw new UserError("layers_pattern needs layers_to_transform (PEFT refuses it alone)");
        if (!layersToTransform.isEmpty() && targetModules != null && targetModules.size() == 1 && !targetModules.getFirst().matches("[A-Za-z0-9_.]+"))
            throw new UserError("layers_to_transform cannot be used when target_modules is a single regex or all-linear (PEFT refuses it)");
        if (!(alpha > 0)) throw new UserError("lora_alpha must be positive, found " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new UserError("lora_dropout must be in [0, 1), found " + dropout);
        if (targetModules == null || targetModules.isEmpty()) throw new UserError("target_modules must name at least one module");
        for (String p : targetModules.size() == 1 ? List.of(targetModules.getFirst()) : List.<String>of()) checkRegex("target_modules", p);
        for (String p : layersPattern) checkRegex("layers_pattern", p);
        targetModules = List.copyOf(targetModules);
    }

    /** Plain LoRA (use_dora false). */
    public LoraConfig(int r, double alpha, double dropout, List<String> targetModules, boolean rslora) {
        this(r, alpha, dropout, targetModules, rslora, false);
    }

    /** No layer restriction, no per-module rank or alpha. */
    public LoraConfig(int r, double alpha, double dropout, List<String> targetModules, boolean rslora, boolean useDora) {
        this(r, alpha, dropout, targetModules, rslora, useDora, List.of(), List.of(), Map.of(), Map.of());
    }

    public LoraConfig withDora(boolean on) {
        return new LoraConfig(r, alpha, dropout, targetModules, rslora, on, layersToTransform, layersPattern, rankPattern, alphaPattern);
    }

    /** PEFT's choice of pattern key: the first of rank_pattern's then alpha_pattern's keys that matches ".*\.key" (or none). */
    private String patternKey(String moduleName) {
        for (var keys : List.of(rankPattern.keySet(), alphaPattern.keySet()))
            for (String k : keys) if (Pattern.compile(".*\\." + k + "$").matcher(moduleName).lookingAt()) return k;
        return null;
    }

    /** r of one module: rank_pattern's value for it, else r. */
    public int r(String moduleName) {
        String k = patternKey(moduleName);
        return k == null ? r : rankPattern.getOrDefault(k, r);
    }

    /** alpha / r (or alpha / √r) of one module, with rank_pattern and alpha_pattern applied. */
    public double scaling(String moduleName) {
        String k = patternKey(moduleName);
        double a = k == null ? alpha : alphaPattern.getOrDefault(k, alpha);
        int rr = r(moduleName);
        return rslora ? a / Math.sqrt(rr) : a / rr;
    }

    public static LoraConfig defaults() {
        return new LoraConfig(8, 16, 0.05, List.of(ALL_LINEAR), false);
    }

    public double scaling() {
        return rslora ? alpha / Math.sqrt(r) : alpha / r;
    }

    /**
     * PEFT's matching: a single string that is not a plain name is a regex that must match the whole module name;
     * otherwise a module matches when its name equals a target or ends with "." + target, and (for a suffix match only,
     * as PEFT does) its layer index is in layers_to_transform when that is set. lm_head is never targeted by all-linear.
     */
    public boolean targets(String moduleName) {
        if (targetModules.size() == 1) {
            String t = targetModules.getFirst();
            if (t.equals(ALL_LINEAR)) return !moduleName.equals("lm_head");
            if (!t.matches("[A-Za-z0-9_.]+")) return Pattern.compile(t).matcher(moduleName).matches();
        }
        if (targetModules.contains(moduleName)) return true; // an exact key: PEFT skips the layer filter
        for (String t : targetModules) if (moduleName.endsWith("." + t)) return inLayers(moduleName);
        return false;
    }

    /** layers_to_transform as PEFT applies it: the index after layers_pattern (or after any ".name.") must be listed. */
    private boolean inLayers(String moduleName) {
        if (layersToTransform.isEmpty()) return true;
        Matcher m = null;
        if (layersPattern.isEmpty()) m = ANY_LAYER.matcher(moduleName);
        else for (String p : layersPattern) {
            m = Pattern.compile(".*\\." + p + "\\.(\\d+)\\..*").matcher(moduleName);
            if (m.lookingAt()) break;
        }
        return m.lookingAt() && layersToTransform.contains(Integer.parseInt(m.group(1)));
    }

    private static void checkRegex(String key, String pattern) {
        try {
            Pattern.compile(pattern);
        } catch (java.util.regex.PatternSyntaxException e) {
            throw new UserError(key + ": '" + pattern + "' is not a valid regular expression: " + e.getDescription());
        }
    }
}
