package dev.tune4j.plan;

import dev.tune4j.hf.UserError;
import java.util.ArrayList;
import java.util.List;

/**
 * The seeds' decision frameworks as explicit rules. Every rule returns its answer with the reasons for the branch taken,
 * each naming its source (seed 000–003 or "tune4j" where the seeds were wrong, silent or contradicted each other;
 * docs/planner.md lists those cases). Inputs the user did not give are null, and the answer then says what is missing.
 */
public final class Rules {
    private Rules() {}

    public record Reason(String source, String text) {
        @Override
        public String toString() {
            return "[" + source + "] " + text;
        }
    }

    public record Answer(String answer, List<Reason> reasons) {
        static Answer of(String answer, Reason... reasons) {
            return new Answer(answer, List.of(reasons));
        }
    }

    // ---- seed 003: in-context learning → RAG → fine-tuning ----

    /** The questions of seed 003's framework; null = not answered yet. */
    public record Situation(Boolean fewShotWorks, Boolean mostlyExternalKnowledge, Integer examples, Boolean styleOrBehavior,
                            Boolean promptingExhausted, Boolean rapidlyChangingFacts, Boolean hasSuccessMetric) {}

    public static Answer fineTuneAtAll(Situation s) {
        var r = new ArrayList<Reason>();
        if (s.fewShotWorks() == null) return new Answer("unknown", List.of(new Reason("seed 003", "first question: can 2–10 examples in the prompt show the model the task? (--few-shot-works)")));
        if (s.fewShotWorks()) return Answer.of("in-context learning", new Reason("seed 003", "a few examples in the prompt already do it: use in-context learning, no training"));
        r.add(new Reason("seed 003", "few-shot prompting is not enough"));
        if (s.mostlyExternalKnowledge() == null) return new Answer("unknown", add(r, "seed 003", "next: is the task mainly about looking up external documents? (--external-knowledge)"));
        if (s.mostlyExternalKnowledge()) return new Answer("RAG", add(r, "seed 003", "the task is mainly access to external knowledge: retrieval (RAG) answers it and stays current"));
        if (Boolean.TRUE.equals(s.rapidlyChangingFacts())) return new Answer("RAG", add(r, "seed 003", "the knowledge changes daily or weekly: weights would be stale, use RAG"));
        if (s.examples() == null) return new Answer("unknown", add(r, "seed 003", "next: how many high-quality training examples exist? (--examples)"));
        if (s.examples() < 100) return new Answer("in-context learning", add(r, "seed 002", s.examples() + " examples (<100): use them as few-shot prompts instead of training"));
        if (s.examples() < 500) return new Answer("in-context learning or RAG", add(r, "seed 003", s.examples() + " examples (<500): not enough for meaningful fine-tuning; seed 002 would allow LoRA from 100 with an overfitting watch"));
        if (s.examples() < 1000) r.add(new Reason("seed 003", s.examples() + " examples: below the 1,000 seed 003 asks for; LoRA can still work (seed 002: 100–1,000, watch overfitting)"));
        else r.add(new Reason("seed 003", s.examples() + " examples: enough data (≥1,000)"));
        if (s.styleOrBehavior() == null) return new Answer("unknown", add(r, "seed 003", "next: is it about style, behaviour, output format or specialised reasoning? (--style-or-behavior)"));
        if (!s.styleOrBehavior()) return new Answer("RAG + in-context learning", add(r, "seed 003", "not a style/behaviour/reasoning change: RAG and prompting probably solve it"));
        if (Boolean.FALSE.equals(s.hasSuccessMetric())) return new Answer("define a metric first", add(r, "seed 003", "no success metric: you could not tell whether fine-tuning helped; build evaluation data first"));
        if (s.promptingExhausted() == null) return new Answer("unknown", add(r, "seed 003", "last: have prompt engineering and few-shot truly been exhausted? (--prompting-exhausted)"));
        if (!s.promptingExhausted()) return new Answer("improve prompts first", add(r, "seed 003", "prompting is not exhausted yet: iterate on prompts before training"));
        return new Answer("fine-tune", add(r, "seed 003", "style/behaviour change, enough data, prompting exhausted: fine-tune (hybrid with RAG for facts is often best)"));
    }

    private static List<Reason> add(List<Reason> r, String source, String text) {
        r.add(new Reason(source, text));
        return r;
    }

    // ---- seed 000: four paths by data volume ----

    /** @param domainTokens raw domain text in tokens, or null; @param pairs instruction pairs, or null */
    public static Answer path(Boolean domainCovered, Long domainTokens, Long pairs, Boolean mustFitLaptop, Boolean separateLicense) {
        var r = new ArrayList<Reason>();
        if (Boolean.TRUE.equals(domainCovered)) return Answer.of("no fine-tuning", new Reason("seed 000", "an off-the-shelf model already covers the domain: choose a model, prompt it"));
        String answer;
        if (domainTokens != null && domainTokens >= 100_000_000_000L) {
            answer = "from scratch";
            r.add(new Reason("seed 000", String.format("%,d domain tokens (≥100B): enough to pre-train from random init, on a large GPU cluster", domainTokens)));
        } else if (domainTokens != null && domainTokens >= 1_000_000_000L) {
            answer = "continued pre-training";
            r.add(new Reason(domainTokens > 10_000_000_000L ? "tune4j" : "seed 000", String.format("%,d domain tokens: continued pre-training of a base model%s", domainTokens,
                    domainTokens > 10_000_000_000L ? " (seed 000's table stops at 10B and starts from-scratch at 100B; between them continued pre-training is still the cheaper path)" : " (1B–10B)")));
        } else if (pairs != null && pairs >= 10_000) {
            answer = pairs > 1_000_000 ? "full SFT" : "full SFT or LoRA";
            r.add(new Reason(pairs > 1_000_000 ? "seed 001" : "seed 000", String.format("%,d pairs: %s", pairs,
                    pairs > 1_000_000 ? "above seed 000's 1M ceiling; seed 001: beyond ~1M examples LoRA's rank starts to limit, full fine-tuning learns more" : "10K–1M pairs: full SFT or LoRA")));
        } else if (pairs != null && pairs >= 100) {
            answer = "LoRA / QLoRA";
            r.add(new Reason("seed 000", String.format("%,d pairs (100–10K): LoRA or QLoRA; with under 10K examples LoRA matches full SFT and overfits less", pairs)));
        } else if (pairs != null) {
            return Answer.of("in-context learning", new Reason("seed 002", pairs + " pairs (<100): too few to train; use them as few-shot examples"));
        } else if (domainTokens != null) {
            return Answer.of("RAG or LoRA on pairs", new Reason("seed 000", String.format("%,d domain tokens (<1B): continued pre-training has negligible effect below 1B tokens; build instruction pairs or use RAG", domainTokens)));
        } else {
            return Answer.of("unknown", new Reason("seed 000", "how much data: raw domain tokens (--domain-tokens) or instruction pairs (--examples)?"));
        }
        if (Boolean.TRUE.equals(mustFitLaptop) && (answer.contains("full") || answer.contains("pre-train") || answer.equals("from scratch"))) {
            r.add(new Reason("seed 000", "it must fit a laptop: LoRA / QLoRA instead (full SFT needs a single A100 or more)"));
            answer = "LoRA / QLoRA";
        }
        if (Boolean.TRUE.equals(separateLicense) && answer.contains("full")) {
            r.add(new Reason("seed 000", "the license must stay separate: LoRA, so only the adapter is shared"));
            answer = "LoRA";
        }
        return new Answer(answer, r);
    }

    // ---- seed 002: VRAM tiers, goal → method, dataset size ----

    /** Seed 002's tier, with the largest catalog model that really fits (QLoRA r=16, batch 1 × 2048, checkpointing). */
    public static Answer vramTier(double vramGb) {
        String tier = vramGb < 8 ? "API fine-tuning (OpenAI, Together AI)" : vramGb < 16 ? "QLoRA on 7–8B models"
                : vramGb < 24 ? "QLoRA on 7–70B models" : "LoRA or QLoRA on any model";
        var r = new ArrayList<Reason>();
        r.add(new Reason("seed 002", String.format("%.0f GB of VRAM → %s", vramGb, tier)));
        long bytes = (long) (vramGb * 1e9);
        String q = largestFitting(MemoryPlan.Method.QLORA, bytes), l = largestFitting(MemoryPlan.Method.LORA, bytes);
        boolean seedClaims70b = vramGb >= 16;
        r.add(new Reason("tune4j", "computed at batch 1 × 2048 tokens with checkpointing, r=16 all-linear: largest catalog model for QLoRA " + q + ", for LoRA " + l
                + (seedClaims70b && !q.equals("llama-2-70b") ? String.format("; seed 002's promise of 70B models at %.0f GB is wrong: Llama-2-70B's NF4 linears alone are 35.3 GB", vramGb) : "")));
        return new Answer(tier, r);
    }

    static String largestFitting(MemoryPlan.Method m, long bytes) {
        String best = "none";
        long bestN = 0;
        for (var e : Catalog.MODELS.entrySet()) {
            var s = new MemoryPlan.Setup(e.getValue(), m, MemoryPlan.Precision.BF16_MIXED, MemoryPlan.Optim.ADAMW, 1, 2048, true, 0.5, 1024, 16,
                    List.of("all-linear"), true, MemoryPlan.Runtime.GPU);
            long n = ParamCount.total(e.getValue());
            if (MemoryPlan.estimate(s).peak() <= bytes && n > bestN) {
                best = e.getKey();
                bestN = n;
            }
        }
        return best;
    }

    public static final List<String> GOALS = List.of("domain-knowledge", "response-quality", "output-format", "reduce-harm", "max-customization");

    public static Answer goal(String goal) {
        return switch (goal) {
            case "domain-knowledge" -> new Answer("SFT", List.of(new Reason("seed 002", "teaching domain knowledge: SFT on instruction–response pairs"),
                    new Reason("seed 001", "but new facts are not low-rank: LoRA absorbs them poorly; for real knowledge use continued pre-training with full fine-tuning, or RAG (seed 003: factual QA is RAG's strength)")));
            case "response-quality" -> Answer.of("SFT + DPO", new Reason("seed 002", "improving response quality: SFT, then DPO on chosen/rejected pairs aligns outputs to preferences"));
            case "output-format" -> Answer.of("SFT", new Reason("seed 002", "changing the output format: SFT learns structured outputs easily"));
            case "reduce-harm" -> Answer.of("DPO", new Reason("seed 002", "reducing harmful outputs: preference learning (DPO) is the tool"));
            case "max-customization" -> Answer.of("full fine-tuning", new Reason("seed 002", "maximum customisation: full fine-tuning updates every parameter"));
            default -> throw new UserError("unknown goal '" + goal + "': expected one of " + GOALS);
        };
    }

    public static Answer datasetSize(long examples) {
        if (examples < 100) return Answer.of("few-shot prompting", new Reason("seed 002", examples + " examples (<100): use few-shot prompting instead"));
        var r = new ArrayList<Reason>();
        String a;
        if (examples < 1000) {
            a = "SFT with LoRA, watch for overfitting";
            r.add(new Reason("seed 002", examples + " examples (100–1,000): LoRA SFT with a validation set and early stopping"));
        } else if (examples < 10_000) {
            a = "SFT with LoRA";
            r.add(new Reason("seed 002", examples + " examples (1,000–10,000): LoRA SFT's optimal range"));
        } else {
            a = "SFT + DPO, or full fine-tuning";
            r.add(new Reason("seed 002", examples + " examples (10,000+): SFT + DPO, or consider full fine-tuning"));
        }
        if (examples < 500) r.add(new Reason("seed 003", "under 500 examples seed 003 advises against fine-tuning at all"));
        return new Answer(a, r);
    }

    // ---- seed 001: the recommendation function, with its numbers recomputed ----

    /**
     * @param objective "instruction", "domain_knowledge" or "task_specific"
     * @param gpus      A100-80GB-equivalent GPUs available
     * @param budgetUsd null = no budget limit; otherwise methods costing more are dropped
     */
    public record Recommendation(String method, List<Reason> reasons, int fullGpus, int loraGpus, int qloraGpus,
                                 double fullUsd, double loraUsd, double qloraUsd) {}

    public static Recommendation recommend(dev.tune4j.hf.ModelConfig model, int gpus, long examples, int tokensPerExample, String objective,
                                           int variants, Double budgetUsd, double usdPerGpuHour) {
        var gpu = Gpus.get("a100-80gb");
        int[] need = new int[3];
        double[] usd = new double[3];
        var methods = MemoryPlan.Method.values();
        for (int i = 0; i < 3; i++) {
            var s = new MemoryPlan.Setup(model, methods[i], MemoryPlan.Precision.BF16_MIXED, MemoryPlan.Optim.ADAMW, 1, 2048, true, 0.5, 1024, 16,
                    List.of("all-linear"), true, MemoryPlan.Runtime.GPU);
            need[i] = MemoryPlan.devicesNeeded(MemoryPlan.estimate(s), gpu.memoryBytes());
            long lora = s.trainable();
            double tokens = 3.0 * examples * tokensPerExample; // three epochs, as the seed assumes
            double h = Cost.hours(tokens, Cost.hardwareFlopsPerToken(model, methods[i], lora, 2048, true), gpu.bf16Tflops(), Math.max(1, need[i]), Cost.DEFAULT_MFU);
            usd[i] = h * Math.max(1, need[i]) * usdPerGpuHour;
        }
        var r = new ArrayList<Reason>();
        String rec = "lora";
        if (objective.equals("domain_knowledge")) {
            rec = "full_fine_tuning";
            r.add(new Reason("seed 001", "new factual knowledge needs broad weight updates; LoRA's low rank limits how much is absorbed"));
        } else if (objective.equals("instruction")) {
            r.add(new Reason("seed 001", "instruction following is a low-rank behavioural change: LoRA matches full fine-tuning at far lower cost"));
        } else if (objective.equals("task_specific")) {
            rec = examples > 10_000_000 ? "full_fine_tuning" : "lora";
            r.add(new Reason("seed 001", examples > 10_000_000 ? "a narrow task with >10M examples: full fine-tuning's higher ceiling pays off"
                    : "a narrow task with under 10M examples: PEFT approaches full fine-tuning quality"));
        } else throw new UserError("unknown objective '" + objective + "': expected instruction, domain_knowledge or task_specific");
        if (rec.equals("full_fine_tuning") && (need[0] < 0 || gpus < need[0])) {
            rec = "qlora";
            r.add(new Reason("seed 001", String.format("full fine-tuning needs %s A100-80GB but %d are available; QLoRA needs %d",
                    need[0] < 0 ? "more than any number of" : String.valueOf(need[0]), gpus, need[2])));
        }
        if (variants > 3) {
            rec = "lora";
            long full = Cost.variantsBytes(model, MemoryPlan.Method.FULL, 0, variants), lora = Cost.variantsBytes(model, MemoryPlan.Method.LORA, ParamCount.lora(model, 16, List.of("all-linear")), variants);
            r.add(new Reason("seed 001", String.format("%d variants: %.0f GB as full copies vs %.1f GB as one base + adapters", variants, full / 1e9, lora / 1e9)));
        }
        int chosen = rec.equals("full_fine_tuning") ? 0 : rec.equals("lora") ? 1 : 2;
        if (need[chosen] < 0 || gpus < need[chosen]) {
            for (int i = chosen + 1; i < 3; i++)
                if (need[i] > 0 && need[i] <= gpus) {
                    r.add(new Reason("tune4j", String.format("%s needs %d A100-80GB, %d available: %s instead", rec, need[chosen], gpus, i == 1 ? "lora" : "qlora")));
                    rec = i == 1 ? "lora" : "qlora";
                    chosen = i;
                    break;
                }
        }
        if (budgetUsd != null && usd[chosen] > budgetUsd) {
            for (int i = chosen + 1; i < 3; i++)
                if (usd[i] <= budgetUsd && need[i] > 0 && need[i] <= gpus) {
                    r.add(new Reason("tune4j", String.format("the budget $%.0f is below %s's estimated $%.0f; %s costs $%.0f (seed 001's function takes a budget but never uses it)",
                            budgetUsd, rec, usd[chosen], i == 1 ? "lora" : "qlora", usd[i])));
                    rec = i == 1 ? "lora" : "qlora";
                    chosen = i;
                    break;
                }
            if (usd[chosen] > budgetUsd) r.add(new Reason("tune4j", String.format("no method fits the $%.0f budget; the cheapest, %s, costs about $%.0f", budgetUsd, rec, usd[chosen])));
        }
        r.add(new Reason("tune4j", "GPU counts come from the memory plan at batch 1 × 2048 with checkpointing, sharding static state across GPUs; seed 001 used 14 B/param and int(x/80)+1, which over-counts exact multiples"));
        return new Recommendation(rec, r, need[0], need[1], need[2], usd[0], usd[1], usd[2]);
    }
}
