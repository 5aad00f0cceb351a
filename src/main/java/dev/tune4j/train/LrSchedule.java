package dev.tune4j.train;

import dev.tune4j.hf.UserError;
/**
 * Learning rate per optimizer step, as transformers' schedulers compute it: {@code lr(i)} is the rate used by optimizer
 * step i+1 (i = 0 is the first step), = base_lr · λ(i). Warmup rises linearly from 0 over {@code warmupSteps}.
 *
 * @param type        linear | cosine | cosine_with_restarts | constant_with_warmup | constant
 * @param cycles      cosine: 0.5 = one half-wave down to 0 (HF default); cosine_with_restarts: number of hard restarts (HF default 1)
 */
public record LrSchedule(String type, double baseLr, int warmupSteps, int totalSteps, double cycles) {
    public LrSchedule {
        if (!java.util.List.of("linear", "cosine", "cosine_with_restarts", "constant_with_warmup", "constant").contains(type))
            throw new UserError("unknown scheduler '" + type + "': expected linear, cosine, cosine_with_restarts, constant_with_warmup or constant");
        if (warmupSteps < 0 || totalSteps <= 0) throw new UserError("need warmup >= 0 and total steps > 0, found " + warmupSteps + ", " + totalSteps);
    }

    /** HF's defaults for cycles: 0.5 for cosine, 1 for cosine_with_restarts. */
    public static LrSchedule of(String type, double baseLr, int warmupSteps, int totalSteps) {
        return new LrSchedule(type, baseLr, warmupSteps, totalSteps, type.equals("cosine_with_restarts") ? 1 : 0.5);
    }

    /** transformers: warmup_steps = ceil(total · ratio). */
    public static int warmupFromRatio(double ratio, int totalSteps) {
        if (ratio < 0 || ratio > 1) throw new UserError("warmup ratio must be in [0, 1], found " + ratio);
        return (int) Math.ceil(totalSteps * ratio);
    }

    public double lr(int step) {
        return baseLr * lambda(step);
    }

    double lambda(int step) {
        if (type.equals("constant")) return 1;
        if (step < warmupSteps) return (double) step / Math.max(1, warmupSteps);
        double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
        return switch (type) {
            case "linear" -> Math.max(0, (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
            case "cosine" -> Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
            case "cosine_with_restarts" -> progress >= 1 ? 0 : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((cycles * progress) % 1.0))));
            default -> 1; // constant_with_warmup after warmup
        };
    }
}
