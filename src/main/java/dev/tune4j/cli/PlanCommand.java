package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.data.DataConfig;
import dev.tune4j.data.Dataset;
import dev.tune4j.data.Encoder;
import dev.tune4j.data.Example;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.plan.*;
import dev.tune4j.text.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** The planner: parameters, memory by component, fit per device, time, cost, storage and the seeds' warnings for one run. */
@Command(name = "plan", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Predict memory, fit, time, cost and storage of a fine-tuning run, with the seeds' warnings (no libtorch).")
final class PlanCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "a model folder (its config.json) or a catalog name: ${COMPLETION-CANDIDATES}", completionCandidates = Names.class)
    String model;

    @Option(names = "--method", defaultValue = "lora", description = "full, lora or qlora (default ${DEFAULT-VALUE})")
    String method;

    @Option(names = "--stage", defaultValue = "sft", description = "sft, pt, dpo, kto, orpo or simpo, as train's --stage; a preference micro-batch runs two rows per item (default ${DEFAULT-VALUE})")
    String stage;

    @Option(names = "--precompute-ref-logps", description = "dpo/kto: reference log-probs computed once before training, no reference pass per step (always so for --method full)")
    boolean precomputeRef;

    @Option(names = "--ref-copy", description = "dpo/kto, --method full: plan a frozen copy of the model as the reference (TRL's default; tune4j stores log-probs instead)")
    boolean refCopy;

    @Option(names = "--from-adapter", description = "lora/qlora: the run continues an SFT adapter (train's --adapter); for dpo/kto its frozen copy is the reference")
    boolean fromAdapter;

    @Option(names = "--use-dora", description = "DoRA on top of lora/qlora (PEFT use_dora): magnitude vectors, and ‖W + s·B·A‖_row formed per projection per pass")
    boolean dora;

    @Option(names = "--gpu", split = ",", description = "devices to fit and price (default: the whole catalog and this machine): ${COMPLETION-CANDIDATES}", completionCandidates = GpuNames.class)
    List<String> gpus;

    @Option(names = "--data", description = "training data file: tokens are counted with the model's tokenizer exactly as train encodes them")
    Path data;

    @Option(names = "--tokenizer", description = "folder with tokenizer.json for --data when --model is a catalog name")
    Path tokenizer;

    @Option(names = "--examples", defaultValue = "10000", description = "examples (pairs for dpo/orpo/simpo) when no --data is given (default ${DEFAULT-VALUE})")
    long examples;

    @Option(names = "--tokens-per-example", defaultValue = "512", description = "tokens per row (prompt + one completion for preference stages) when no --data is given (default ${DEFAULT-VALUE})")
    int tokensPerExample;

    @Option(names = "--epochs", defaultValue = "3", description = "epochs (default ${DEFAULT-VALUE})")
    double epochs;

    @Option(names = "--batch-size", defaultValue = "1", description = "micro-batch rows; pairs for dpo/orpo/simpo, examples for kto (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--seq-len", defaultValue = "2048", description = "tokens per row, the longest (default ${DEFAULT-VALUE})")
    int seq;

    @Option(names = "--precision", defaultValue = "bf16-mixed", description = "GPU: fp32, bf16-mixed (fp32 master + states, 16 B/param) or bf16 (default ${DEFAULT-VALUE}); the CPU build is fp32")
    String precision;

    @Option(names = "--optim", defaultValue = "adamw", description = "adamw, adamw8bit or offload (fp32 states in host RAM) (default ${DEFAULT-VALUE})")
    String optim;

    @Option(names = "--gradient-checkpointing", negatable = true, description = "recompute layers in backward (default: on for qlora, off otherwise, as in train)")
    Boolean checkpointing;

    @Option(names = "--loss-chunk", defaultValue = "" + dev.tune4j.train.TrainConfig.LOSS_CHUNK, description = "rows of logits at once, as train's --loss-chunk; 0 = full logits as in the HF loss path (default ${DEFAULT-VALUE})")
    int lossChunk;

    @Option(names = "--labelled-share", defaultValue = "0.5", description = "share of tokens that are targets when no --data is given (default ${DEFAULT-VALUE})")
    double labelledShare;

    @Option(names = "--r", defaultValue = "16", description = "LoRA rank (default ${DEFAULT-VALUE})")
    int r;

    @Option(names = "--lora-alpha", description = "LoRA alpha (checked against r)")
    Double alpha;

    @Option(names = "--target-modules", defaultValue = "all-linear", split = ",", description = "LoRA targets: projection names or all-linear (default ${DEFAULT-VALUE})")
    List<String> targets;

    @Option(names = "--no-double-quant", description = "qlora: fp32 absmax per block (4.5 bits/param instead of 4.127)")
    boolean noDoubleQuant;

    @Option(names = "--lr", description = "learning rate to check against the seeds' ranges")
    Double lr;

    @Option(names = "--val-ratio", description = "validation share to check (seeds: 10–20 %%)")
    Double valRatio;

    @Option(names = "--mix-ratio", description = "share of general data mixed in (full fine-tuning's forgetting guard)")
    Double mixRatio;

    @Option(names = "--continued-pretraining", description = "raw-text next-token training")
    boolean cpt;

    @Option(names = "--instruct", description = "the base model is instruction-tuned (default: guessed from the name)")
    Boolean instruct;

    @Option(names = "--mfu", defaultValue = "0.35", description = "model-FLOPs utilization for time estimates (default ${DEFAULT-VALUE})")
    double mfu;

    @Option(names = "--price", split = ",", description = "override a device's hourly price: NAME=USD (repeatable)")
    Map<String, Double> prices = new LinkedHashMap<>();

    @Option(names = "--checkpoints", defaultValue = "3", description = "checkpoints kept on disk (default ${DEFAULT-VALUE})")
    int checkpoints;

    @Option(names = "--variants", defaultValue = "1", description = "deployable variants to store (default ${DEFAULT-VALUE})")
    int variants;

    @Option(names = "--nproc", defaultValue = "1", description = "data-parallel processes (train's --nproc-per-node × nodes): the memory of one rank (default ${DEFAULT-VALUE})")
    int nproc;

    @Option(names = "--zero", defaultValue = "0", description = "with --nproc: ZeRO stage 0, 1 (optimizer state split over the ranks) or 2 (default ${DEFAULT-VALUE})")
    int zero;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Option(names = "--markdown", description = "print markdown tables")
    boolean markdown;

    static final class Names extends ArrayList<String> {
        Names() {
            super(Catalog.MODELS.keySet());
        }
    }

    static final class GpuNames extends ArrayList<String> {
        GpuNames() {
            super(Gpus.names());
        }
    }

    @Override
    public Integer call() throws Exception {
        checkNumbers();
        Path p = Path.of(model);
        boolean folder = Files.isDirectory(p);
        ModelConfig c = folder ? ModelConfig.load(p.resolve("config.json")) : Catalog.get(model);
        var m = MemoryPlan.Method.parse(method);
        var st = MemoryPlan.Stage.parse(stage);
        if (fromAdapter && m == MemoryPlan.Method.FULL) throw new UserError("--from-adapter: an adapter is continued by lora or qlora, not --method full");
        var ref = MemoryPlan.Reference.of(st, m, precomputeRef, fromAdapter, refCopy);
        var prec = switch (precision) {
            case "fp32" -> MemoryPlan.Precision.FP32;
            case "bf16-mixed" -> MemoryPlan.Precision.BF16_MIXED;
            case "bf16" -> MemoryPlan.Precision.BF16;
            default -> throw new UserError("--precision: expected fp32, bf16-mixed or bf16, found '" + precision + "'");
        };
        var opt = switch (optim) {
            case "adamw" -> MemoryPlan.Optim.ADAMW;
            case "adamw8bit" -> MemoryPlan.Optim.ADAMW8BIT;
            case "offload" -> MemoryPlan.Optim.OFFLOAD;
            default -> throw new UserError("--optim: expected adamw, adamw8bit or offload, found '" + optim + "'");
        };
        for (String t : targets) if (!t.equals("all-linear") && !ParamCount.PROJECTIONS.contains(t))
            throw new UserError("--target-modules: unknown projection '" + t + "': expected " + ParamCount.PROJECTIONS + " or all-linear");
        List<Gpus.Gpu> devices = new ArrayList<>();
        for (String g : gpus == null ? Gpus.names() : gpus) devices.add(Gpus.priced(Gpus.get(g), prices));
        for (String k : prices.keySet()) Gpus.get(k); // a misspelt --price name is an error, not ignored

        long ex = examples, tokens = examples * st.rowsPerItem() * tokensPerExample;
        double labelled = labelledShare;
        String source = "assumed: " + examples + (st.rowsPerItem() > 1 ? " items × " + st.rowsPerItem() + " rows" : " examples") + " × " + tokensPerExample + " tokens";
        if (data != null && st.rowsPerItem() > 1)
            throw new UserError("--data with --stage " + stage + ": the planner counts tokens of sft/pt data only; give --examples (pairs) and --tokens-per-example (per row)");
        if (data != null) {
            Path tokDir = tokenizer != null ? tokenizer : folder ? p : null;
            if (tokDir == null) throw new UserError("--data with a catalog model needs --tokenizer DIR (a folder with tokenizer.json) to count tokens");
            try (Tokenizer tok = Tokenizer.load(tokDir)) {
                Integer eos = tok.specialId("eos_token");
                long eosId = eos != null ? eos : c.eosTokenIds().isEmpty() ? 0 : c.eosTokenIds().getFirst();
                var style = tok.chatTemplate().isPresent() ? Encoder.PromptStyle.TEMPLATE : Encoder.PromptStyle.ALPACA;
                Dataset ds = Dataset.load(new DataConfig(data, null, style, seq, 0.0, null, null, 0.0, false, 0), tok, eosId);
                ex = ds.train.size();
                tokens = ds.train.stream().mapToLong(Example::length).sum();
                long sup = ds.train.stream().mapToLong(Example::supervisedTokens).sum();
                labelled = tokens == 0 ? 0 : (double) sup / tokens;
                source = "measured with the tokenizer: " + ex + " examples, " + sup + " labelled";
            }
        }
        boolean ckpt = checkpointing != null ? checkpointing : m == MemoryPlan.Method.QLORA;
        if (dora && m == MemoryPlan.Method.FULL) throw new UserError("--use-dora: DoRA is an option of --method lora or qlora, not of full");
        var setup = new MemoryPlan.Setup(c, m, prec, opt, batch, seq, ckpt, labelled, lossChunk, r, targets, !noDoubleQuant, MemoryPlan.Runtime.GPU).withStage(st, ref, ex).withDora(dora);
        boolean isInstruct = instruct != null ? instruct : model.toLowerCase().contains("instruct") || model.toLowerCase().contains("chat");
        var run = new Checks.Run(m, lr, r, alpha, epochs, ex, valRatio, cpt, isInstruct, cpt ? tokens : null, mixRatio,
                ParamCount.total(c) / 1e9, ckpt, null);
        var report = PlanReport.build(new PlanReport.Inputs(model, c, setup, devices, ex, tokens, source, epochs, mfu, checkpoints, variants, run));
        String perRank = null;
        if (nproc > 1) { // one rank's memory: ZeRO's share of the optimizer state, the gradient buckets in flight
            var e = MemoryPlan.perRank(setup, nproc, zero);
            var dp = new LinkedHashMap<String, Object>();
            dp.put("processes", nproc);
            dp.put("zero", zero);
            dp.put("global_batch", (long) batch * nproc);
            dp.put("components", e.parts());
            dp.put("peak_bytes_per_rank", e.peak());
            report.put("data_parallel", dp);
            perRank = String.format("%ndata parallel: %d processes, zero %d, global batch %d: predicted peak %.2f GB per rank (%s)%n", nproc, zero, (long) batch * nproc, e.peak() / 1e9,
                    String.join(", ", e.parts().entrySet().stream().map(x -> x.getKey() + " " + String.format("%.2f GB", x.getValue() / 1e9)).toList()));
        }
        if (json) System.out.println(new ObjectMapper().disable(SerializationFeature.FAIL_ON_EMPTY_BEANS).writeValueAsString(report));
        else System.out.print(PlanReport.render(report, markdown) + (perRank == null ? "" : perRank));
        return 0;
    }

    /** Every number by name, before the model is read: a negative or NaN one would print negative tokens, time and cost. */
    private void checkNumbers() {
        Limits.positive("--examples", examples);
        Limits.positive("--tokens-per-example", tokensPerExample);
        Limits.positive("--epochs", epochs);
        Limits.positive("--batch-size", batch);
        Limits.positive("--seq-len", seq);
        Limits.nonNegative("--loss-chunk", lossChunk);
        Limits.inRange("--labelled-share", labelledShare, 0, false, 1, true);
        Limits.positive("--r", r);
        if (alpha != null) Limits.positive("--lora-alpha", alpha);
        if (lr != null) Limits.positive("--lr", lr);
        if (valRatio != null) Limits.inRange("--val-ratio", valRatio, 0, true, 1, false);
        if (mixRatio != null) Limits.inRange("--mix-ratio", mixRatio, 0, true, 1, false);
        Limits.inRange("--mfu", mfu, 0, false, 1, true);
        prices.forEach((name, usd) -> Limits.nonNegative("--price " + name, usd));
        Limits.nonNegative("--checkpoints", checkpoints);
        Limits.positive("--variants", variants);
        Limits.inRange("--nproc", nproc, 1, 1 << 20, "processes");
        Limits.inRange("--zero", zero, 0, 2, "(ZeRO stage)");
    }
}
