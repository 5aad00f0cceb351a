package dev.tune4j.peft;

import java.util.List;
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
 */
public record LoraConfig(int r, double alpha, double dropout, List<String> targetModules, boolean rslora, boolean useDora) {
    public static final String ALL_LINEAR = "all-linear";

    public LoraConfig {
        if (r <= 0) throw new IllegalArgumentException("r must be positive, found " + r);
        if (!(alpha > 0)) throw new IllegalArgumentException("lora_alpha must be positive, found " + alpha);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("lora_dropout must be in [0, 1), found " + dropout);
        if (targetModules == null || targetModules.isEmpty()) throw new IllegalArgumentException("target_modules must name at least one module");
        targetModules = List.copyOf(targetModules);
    }

    /** Plain LoRA (use_dora false). */
    public LoraConfig(int r, double alpha, double dropout, List<String> targetModules, boolean rslora) {
        this(r, alpha, dropout, targetModules, rslora, false);
    }

    public LoraConfig withDora(boolean on) {
        return new LoraConfig(r, alpha, dropout, targetModules, rslora, on);
    }

    public static LoraConfig defaults() {
        return new LoraConfig(8, 16, 0.05, List.of(ALL_LINEAR), false);
    }

    public double scaling() {
        return rslora ? alpha / Math.sqrt(r) : alpha / r;
    }

    /**
     * PEFT's matching: a single string that is not a plain name is a regex that must match the whole module name;
     * otherwise a module matches when its name equals a target or ends with "." + target. lm_head is never targeted by
     * all-linear.
     */
    public boolean targets(String moduleName) {
        if (targetModules.size() == 1) {
            String t = targetModules.getFirst();
            if (t.equals(ALL_LINEAR)) return !moduleName.equals("lm_head");
            if (!t.matches("[A-Za-z0-9_.]+")) return Pattern.compile(t).matcher(moduleName).matches();
        }
        for (String t : targetModules) if (moduleName.equals(t) || moduleName.endsWith("." + t)) return true;
        return false;
    }
}
