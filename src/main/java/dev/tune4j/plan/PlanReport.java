package dev.tune4j.plan;

import dev.tune4j.hf.ModelConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One planner answer for a model, method and data set: parameters, memory by component, fit on each device (largest
 * batch and sequence), compute, time and cost per device, storage, and the seeds' warnings. Built as a plain map so the
 * same object prints as text, markdown or JSON.
 */
public final class PlanReport {
    private PlanReport() {}

    /**
     * @param tokens       trained tokens per epoch, every row's (measured with the tokenizer, or examples × rows × tokens per row)
     * @param tokensSource "measured with the tokenizer" or "assumed"
     * @param checkpoints  checkpoints kept on disk during the run
     * @param variants     deployable variants to store (seed 001's k)
     */
    public record Inputs(String modelName, ModelConfig model, MemoryPlan.Setup setup, List<Gpus.Gpu> devices, long examples, long tokens,
                         String tokensSource, double epochs, double mfu, int checkpoints, int variants, Checks.Run run) {}

    public static Map<String, Object> build(Inputs in) {
        ModelConfig c = in.model();
        var s = in.setup();
        var out = new LinkedHashMap<String, Object>();
        var model = new LinkedHashMap<String, Object>();
        model.put("name", in.modelName());
        model.put("architecture", c.arch().className);
        model.put("layers", c.numLayers());
        model.put("hidden", c.hiddenSize());
        model.put("intermediate", c.intermediateSize());
        model.put("heads", c.numHeads());
        model.put("kv_heads", c.numKvHeads());
        model.put("vocab", c.vocabSize());
        model.put("tied_embeddings", c.tieWordEmbeddings());
        model.put("parameters", ParamCount.byComponent(c));
        model.put("total", ParamCount.total(c));
        model.put("non_embedding", ParamCount.nonEmbedding(c));
        out.put("model", model);

        long trainable = s.trainable();
        var method = new LinkedHashMap<String, Object>();
        method.put("method", s.method().name().toLowerCase());
        method.put("trainable", trainable);
        method.put("trainable_share", (double) trainable / ParamCount.total(c));
        method.put("stage", s.stage().name().toLowerCase());
        if (s.stage().hasReference()) method.put("reference", s.reference().name().toLowerCase());
        if (s.method() != MemoryPlan.Method.FULL) {
            method.put("r", s.r());
            method.put("target_modules", s.targets());
        }
        out.put("method", method);

        var est = MemoryPlan.estimate(s);
        var mem = new LinkedHashMap<String, Object>();
        mem.put("runtime", s.runtime().name().toLowerCase());
        mem.put("precision", s.runtime() == MemoryPlan.Runtime.CPU ? "fp32" : s.precision().name().toLowerCase().replace('_', '-'));
        mem.put("optimizer", s.optim().name().toLowerCase());
        mem.put("batch_size", s.batch());
        mem.put("rows", s.rows());
        mem.put("seq_len", s.seq());
        mem.put("gradient_checkpointing", s.checkpointing());
        mem.put("loss", s.lossChunk() > 0 ? "labelled rows, chunks of " + s.lossChunk() : "full logits");
        mem.put("components", est.parts());
        mem.put("peak_bytes", est.peak());
        mem.put("host_bytes", est.host());
        out.put("memory", mem);

        double fpt = Cost.stepFlopsPerToken(s), flops = Cost.runFlops(s, in.tokens(), in.epochs());
        double hfpt = Cost.stepHardwareFlopsPerToken(s);
        double trained = in.tokens() * in.epochs();
        var compute = new LinkedHashMap<String, Object>();
        compute.put("examples", in.examples());
        compute.put("tokens_per_epoch", in.tokens());
        compute.put("tokens_source", in.tokensSource());
        compute.put("epochs", in.epochs());
        compute.put("trained_tokens", (long) trained);
        compute.put("model_flops_per_token", fpt);
        compute.put("hardware_flops_per_token", hfpt);
        if (s.reference().passEachStep()) compute.put("reference_flops_per_token", Cost.forwardFlopsPerToken(c, s.seq()));
        if (s.reference() == MemoryPlan.Reference.STORED) compute.put("reference_one_off_flops", in.tokens() * Cost.forwardFlopsPerToken(c, s.seq()));
        compute.put("total_flops", flops);
        compute.put("mfu", in.mfu());
        out.put("compute", compute);

        var devices = new ArrayList<Map<String, Object>>();
        for (Gpus.Gpu g : in.devices()) {
            var d = new LinkedHashMap<String, Object>();
            var sd = g.kind().equals("host") ? s.withRuntime(MemoryPlan.Runtime.CPU) : s;
            var e = sd == s ? est : MemoryPlan.estimate(sd);
            d.put("device", g.name());
            d.put("memory_bytes", g.memoryBytes());
            d.put("runtime", sd.runtime().name().toLowerCase());
            d.put("peak_bytes", e.peak());
            d.put("fits", e.peak() <= g.memoryBytes());
            d.put("devices_needed", MemoryPlan.devicesNeeded(e, g.memoryBytes()));
            d.put("largest_batch_at_seq", MemoryPlan.largestBatch(sd, g.memoryBytes()));
            d.put("largest_seq_at_batch", MemoryPlan.largestSeq(sd, g.memoryBytes()));
            int n = Math.max(1, MemoryPlan.devicesNeeded(e, g.memoryBytes()));
            double hours = Double.isNaN(g.bf16Tflops()) ? Double.NaN : Cost.hours(flops, g.bf16Tflops(), n, in.mfu());
            d.put("hours", orNull(hours));
            d.put("usd_per_hour", orNull(g.usdPerHour()));
            d.put("usd", orNull(hours * n * g.usdPerHour()));
            d.put("note", g.note());
            devices.add(d);
        }
        out.put("devices", devices);

        var storage = new LinkedHashMap<String, Object>();
        long ckpt = Cost.checkpointBytes(c, s.method(), trainable, true);
        storage.put("checkpoint_bytes", ckpt);
        storage.put("checkpoints_kept", in.checkpoints());
        storage.put("checkpoints_bytes", ckpt * in.checkpoints());
        storage.put("final_artifact_bytes", Cost.checkpointBytes(c, s.method(), trainable, false));
        storage.put("variants", in.variants());
        storage.put("variants_as_full_copies_bytes", Cost.variantsBytes(c, MemoryPlan.Method.FULL, trainable, in.variants()));
        storage.put("variants_as_base_plus_adapters_bytes", Cost.variantsBytes(c, MemoryPlan.Method.LORA, ParamCount.lora(c, s.r(), s.targets()), in.variants()));
        storage.put("checkpoints_usd_per_month", ckpt * in.checkpoints() / 1e9 * Cost.STORAGE_USD_PER_GB_MONTH);
        out.put("storage", storage);

        var advice = new ArrayList<String>();
        if (in.examples() > 0) Rules.datasetSize(in.examples()).reasons().forEach(r -> advice.add(r.toString()));
        out.put("dataset_advice", advice);
        out.put("warnings", Checks.check(in.run()).stream().map(Rules.Reason::toString).toList());
        return out;
    }

    /** JSON has no NaN: unknown numbers are null. */
    static Double orNull(double v) {
        return Double.isNaN(v) ? null : v;
    }

    // ---- rendering ----

    static String gb(Object bytes) {
        return String.format("%.2f GB", ((Number) bytes).longValue() / 1e9);
    }

    static String money(Double usd) {
        return usd == null ? "—" : String.format("$%,.2f", usd);
    }

    static String hours(Double h) {
        return h == null ? "—" : h < 1 ? String.format("%.0f min", h * 60) : String.format("%.1f h", h);
    }

    @SuppressWarnings("unchecked")
    public static String render(Map<String, Object> r, boolean markdown) {
        var sb = new StringBuilder();
        var model = (Map<String, Object>) r.get("model");
        var method = (Map<String, Object>) r.get("method");
        var mem = (Map<String, Object>) r.get("memory");
        var compute = (Map<String, Object>) r.get("compute");
        var storage = (Map<String, Object>) r.get("storage");
        String h = markdown ? "## " : "";
        sb.append(markdown ? "# " : "").append(String.format("%s (%s): %d layers, hidden %d, intermediate %d, heads %d/%d, vocab %d%s%n",
                model.get("name"), model.get("architecture"), model.get("layers"), model.get("hidden"), model.get("intermediate"), model.get("heads"),
                model.get("kv_heads"), model.get("vocab"), (Boolean) model.get("tied_embeddings") ? ", tied embeddings" : ""));
        sb.append('\n').append(h).append("Parameters\n");
        var rows = new ArrayList<String[]>();
        ((Map<String, Long>) model.get("parameters")).forEach((k, v) -> rows.add(new String[]{k, String.format("%,d", v)}));
        rows.add(new String[]{"total", String.format("%,d", (Long) model.get("total"))});
        rows.add(new String[]{"non-embedding", String.format("%,d", (Long) model.get("non_embedding"))});
        rows.add(new String[]{method.get("method") + " trainable", String.format("%,d (%.3f %%)%s", (Long) method.get("trainable"), 100 * (Double) method.get("trainable_share"),
                method.containsKey("r") ? " r=" + method.get("r") + " on " + String.join(",", (List<String>) method.get("target_modules")) : "")});
        table(sb, markdown, new String[]{"component", "parameters"}, rows);

        String stage = (String) method.get("stage"), batch = stage.equals("sft") || stage.equals("pt") ? String.valueOf(mem.get("batch_size"))
                : mem.get("batch_size") + (stage.equals("kto") ? " examples" : " pairs") + " = " + mem.get("rows") + " rows";
        sb.append('\n').append(h).append(String.format("Memory at batch %s × %s tokens (stage %s%s, %s, %s, %s, checkpointing %s, loss: %s)%n", batch, mem.get("seq_len"),
                stage, method.containsKey("reference") ? ", reference " + method.get("reference") : "", mem.get("runtime"), mem.get("precision"), mem.get("optimizer"), (Boolean) mem.get("gradient_checkpointing") ? "on" : "off", mem.get("loss")));
        rows.clear();
        ((Map<String, Long>) mem.get("components")).forEach((k, v) -> rows.add(new String[]{k, gb(v)}));
        rows.add(new String[]{"predicted peak", gb(mem.get("peak_bytes"))});
        if ((Long) mem.get("host_bytes") > 0) rows.add(new String[]{"host RAM (offloaded optimizer)", gb(mem.get("host_bytes"))});
        table(sb, markdown, new String[]{"component", "bytes"}, rows);

        String ref = compute.containsKey("reference_flops_per_token") ? String.format(", incl. %.2f for the reference forward", (Double) compute.get("reference_flops_per_token") / 1e9)
                : compute.containsKey("reference_one_off_flops") ? String.format(", + %.3g PFLOP once for the stored reference log-probs", (Double) compute.get("reference_one_off_flops") / 1e15) : "";
        sb.append('\n').append(h).append(String.format("Devices: %,d tokens/epoch (%s) × %s epochs, %.2f GFLOP/token (%.2f with recompute%s), MFU %.0f %%%n",
                (Long) compute.get("tokens_per_epoch"), compute.get("tokens_source"), compute.get("epochs"), (Double) compute.get("model_flops_per_token") / 1e9,
                (Double) compute.get("hardware_flops_per_token") / 1e9, ref, 100 * (Double) compute.get("mfu")));
        rows.clear();
        for (var d : (List<Map<String, Object>>) r.get("devices")) {
            int need = (Integer) d.get("devices_needed");
            rows.add(new String[]{(String) d.get("device"), gb(d.get("memory_bytes")), gb(d.get("peak_bytes")),
                    (Boolean) d.get("fits") ? "yes" : need > 1 ? need + " devices" : "no", String.valueOf(d.get("largest_batch_at_seq")), String.valueOf(d.get("largest_seq_at_batch")),
                    hours((Double) d.get("hours")), money((Double) d.get("usd"))});
        }
        table(sb, markdown, new String[]{"device", "memory", "peak", "fits", "max batch", "max seq", "time", "cost"}, rows);

        sb.append('\n').append(h).append("Storage\n");
        rows.clear();
        rows.add(new String[]{"one checkpoint (with optimizer state)", gb(storage.get("checkpoint_bytes"))});
        rows.add(new String[]{storage.get("checkpoints_kept") + " checkpoints kept", gb(storage.get("checkpoints_bytes")) + String.format(" ($%.2f/month)", (Double) storage.get("checkpoints_usd_per_month"))});
        rows.add(new String[]{"final artifact", gb(storage.get("final_artifact_bytes"))});
        rows.add(new String[]{storage.get("variants") + " variants as full copies", gb(storage.get("variants_as_full_copies_bytes"))});
        rows.add(new String[]{storage.get("variants") + " variants as base + adapters", gb(storage.get("variants_as_base_plus_adapters_bytes"))});
        table(sb, markdown, new String[]{"what", "bytes"}, rows);

        for (String key : List.of("dataset_advice", "warnings")) {
            var l = (List<String>) r.get(key);
            if (l.isEmpty()) continue;
            sb.append('\n').append(h).append(key.equals("warnings") ? "Warnings\n" : "Data set size\n");
            for (String s : l) sb.append(markdown ? "- " : "  ").append(s).append('\n');
        }
        return sb.toString();
    }

    private static void table(StringBuilder sb, boolean markdown, String[] head, List<String[]> rows) {
        if (markdown) {
            sb.append("| ").append(String.join(" | ", head)).append(" |\n|");
            sb.append("---|".repeat(head.length)).append('\n');
            for (String[] row : rows) sb.append("| ").append(String.join(" | ", row)).append(" |\n");
            return;
        }
        int[] w = new int[head.length];
        for (int i = 0; i < head.length; i++) w[i] = head[i].length();
        for (String[] row : rows) for (int i = 0; i < row.length; i++) w[i] = Math.max(w[i], row[i].length());
        var all = new ArrayList<String[]>();
        all.add(head);
        all.addAll(rows);
        for (String[] row : all) {
            sb.append(' ');
            for (int i = 0; i < row.length; i++) sb.append(' ').append(i == 0 ? pad(row[i], w[i], false) : pad(row[i], w[i], true));
            sb.append('\n');
        }
    }

    private static String pad(String s, int w, boolean right) {
        String sp = " ".repeat(w - s.length());
        return right ? sp + s : s + sp;
    }
}
