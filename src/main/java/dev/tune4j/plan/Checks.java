package dev.tune4j.plan;

import java.util.ArrayList;
import java.util.List;

/** The seeds' hyperparameter defaults as warnings on a concrete run; each names its source and what it suggests instead. */
public final class Checks {
    private Checks() {}

    /**
     * A run's choices; null where not given.
     *
     * @param continuedPretraining raw-text next-token training (tune4j's pretrain recipe / format "text")
     * @param instructModel        the base is already instruction-tuned (name or chat template says so)
     * @param generalMix           share of general data mixed in (full fine-tuning's forgetting guard)
     */
    public record Run(MemoryPlan.Method method, Double lr, Integer r, Double alpha, Double epochs, Long examples, Double valRatio,
                      Boolean continuedPretraining, Boolean instructModel, Long domainTokens, Double generalMix, Double modelBillions,
                      Boolean checkpointing, Double warmupRatio) {}

    public static List<Rules.Reason> check(Run run) {
        var w = new ArrayList<Rules.Reason>();
        boolean full = run.method() == MemoryPlan.Method.FULL;
        if (run.lr() != null) {
            if (full && run.lr() > 5e-5)
                w.add(new Rules.Reason("seed 001", String.format("lr %.1e is above full fine-tuning's 1e-5–5e-5%s; larger rates risk catastrophic forgetting", run.lr(), run.lr() >= 1e-4 ? " (seed 003: 1e-4+ is unstable)" : "")));
            if (full && run.lr() < 1e-6) w.add(new Rules.Reason("seed 003", String.format("lr %.1e: at 1e-6 and below learning is very slow", run.lr())));
            if (!full && (run.lr() < 1e-4 || run.lr() > 3e-4))
                w.add(new Rules.Reason("seed 001", String.format("lr %.1e is outside LoRA's usual 1e-4–3e-4 (the adapter starts at zero and needs a larger rate than full fine-tuning)", run.lr())));
        }
        if (!full && run.r() != null) {
            if (run.r() > 64) w.add(new Rules.Reason("seed 000", "r=" + run.r() + " > 64: more memory, overfitting and diminishing returns (seed 003: use full fine-tuning instead); r=8–16 is standard"));
            else if (run.r() < 4) w.add(new Rules.Reason("seed 003", "r=" + run.r() + " < 4 is too small for complex tasks"));
            if (run.alpha() != null && run.alpha().doubleValue() == run.r())
                w.add(new Rules.Reason("seed 001", "lora_alpha = r gives scaling 1.0, which trains slowly; alpha = 2r (scaling 2) is the usual choice, and changing r without alpha changes the effective learning rate (seed 002's \"safe default\" uses alpha = r = 16)"));
        }
        if (run.examples() != null) {
            if (run.examples() < 500) w.add(new Rules.Reason("seed 003", run.examples() + " examples: under 500 fine-tuning rarely helps; collect more or use in-context learning"));
            if (run.epochs() != null && run.examples() < 1000 && run.epochs() > 3)
                w.add(new Rules.Reason("seed 002", String.format("%.0f epochs on %d examples overfits: use 1–3 epochs with a validation set and watch its loss", run.epochs(), run.examples())));
            if (run.epochs() != null && run.examples() >= 50_000 && run.epochs() > 2)
                w.add(new Rules.Reason("seed 003", String.format("%.0f epochs on %,d examples: 1–2 epochs are typical for large data sets", run.epochs(), run.examples())));
        }
        if (run.valRatio() != null && (run.valRatio() < 0.1 || run.valRatio() > 0.2))
            w.add(new Rules.Reason("seed 002", String.format("validation split %.0f %%: hold out 10–20 %% of the data", 100 * run.valRatio())));
        if (Boolean.TRUE.equals(run.continuedPretraining())) {
            if (Boolean.TRUE.equals(run.instructModel()))
                w.add(new Rules.Reason("seed 000", "continued pre-training on an instruct model breaks its chat format: continue pre-training the base model, then instruction-tune"));
            if (run.domainTokens() != null && run.domainTokens() < 1_000_000_000L)
                w.add(new Rules.Reason("seed 000", String.format("%,d domain tokens: below 1B tokens continued pre-training has a negligible effect", run.domainTokens())));
            if (!full) w.add(new Rules.Reason("seed 001", "LoRA on raw domain text mostly learns style, not facts: benchmark on domain QA, not only perplexity, or use full fine-tuning"));
        }
        if (full && (run.generalMix() == null || run.generalMix() < 0.05))
            w.add(new Rules.Reason("seed 001", "full fine-tuning without general data forgets: mix in at least 5 % general text (--mix-file, --mix-ratio 0.05–0.10) and run tune4j's forgetting check"));
        if (full && run.modelBillions() != null && run.modelBillions() >= 7 && !Boolean.TRUE.equals(run.checkpointing()))
            w.add(new Rules.Reason("seed 001", "full fine-tuning of a 7B+ model: always enable gradient checkpointing"));
        if (run.warmupRatio() != null && run.warmupRatio() == 0)
            w.add(new Rules.Reason("seed 001", "no warm-up: a linear warm-up over ~3 % of steps (seed 003: up to 10 %) avoids early instability"));
        return w;
    }
}
