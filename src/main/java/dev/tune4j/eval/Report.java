package dev.tune4j.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.AtomicFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.regex.Pattern;

/**
 * {@code report.html} for a run folder: one self-contained page (inline SVG and CSS; no scripts, fonts or network) read
 * from the files the run left (run_config.json, metrics.jsonl, summary.json, spectrum.json, forgetting.json,
 * samples.json): headline numbers, curves over steps (loss with validation loss, learning rate, gradient norm, tokens/s,
 * resident memory; reward margin and accuracy for preference runs), time per phase, predicted memory by component next to
 * the measured peak, the adapter spectrum as a layers × modules heat map with its warnings marked, the forgetting check,
 * sample answers and the configuration. Numbers are rounded and carry units ({@link Units}); missing parts say so.
 */
public final class Report {
    private Report() {}

    static final ObjectMapper JSON = new ObjectMapper();

    private static final String CSS = """
            :root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--warn:#b91c1c;--ok:#15803d}
            *{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
            background:var(--bg);margin:0;padding:28px 36px;line-height:1.4}main{max-width:1180px;margin:0 auto}
            h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}.sub{color:var(--muted);font-size:13px;word-break:break-all}
            .chip{display:inline-block;background:#e0e7ff;color:#3730a3;border-radius:999px;padding:2px 10px;font-size:12px;margin-right:6px;font-weight:600}
            .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(135px,1fr));gap:12px;margin-top:16px}
            .card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px 14px}
            .card .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}.card .v{font-size:21px;font-weight:650;margin-top:2px;white-space:nowrap}
            .card .n{font-size:12px;color:var(--muted)}.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
            .panel{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:10px 12px}
            svg{width:100%;height:auto;display:block}.ct{font-size:14px;font-weight:600;fill:var(--fg)}.cv{font-size:18px;font-weight:650;fill:var(--fg)}
            .tick{font-size:11px;fill:var(--muted)}.lbl{font-size:14px;fill:var(--fg)}.b{font-weight:650}.inbar{font-size:12px;fill:#fff}
            .muted{fill:var(--muted);color:var(--muted)}.grid{stroke:#eef0f3}.axis{stroke:#9ca3af}
            .legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:13px;margin:6px 0 0}.sw{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:5px;vertical-align:-1px}
            table{border-collapse:collapse;font-size:13px}td,th{padding:4px 10px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
            th{color:var(--muted);font-weight:600}.heat{width:100%}.heat td{padding:0;border:2px solid var(--card);text-align:center;font-size:11px;height:20px;border-radius:4px}
            .heat th{font-size:11px;padding:2px 4px;text-align:center}.heat td.w{outline:2px solid var(--warn);outline-offset:-2px;font-weight:700}
            .warn{color:var(--warn)}.ok{color:var(--ok)}.badge{border-radius:999px;padding:2px 10px;font-size:12px;font-weight:700}
            .badge.warn{background:#fee2e2}.badge.ok{background:#dcfce7}
            .samples{display:grid;gap:10px}.sample{display:grid;grid-template-columns:1fr 1fr 1fr;gap:10px}
            .sample div{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:8px 10px;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:220px;overflow:auto}
            .sample .k{font-size:11px;color:var(--muted);text-transform:uppercase;display:block;margin-bottom:3px}
            details{margin-top:8px}summary{cursor:pointer;color:#1d4ed8;font-size:14px}
            .kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:0 24px}.kv div{display:flex;justify-content:space-between;border-bottom:1px solid var(--line);padding:3px 0;font-size:13px}
            .kv span:first-child{color:var(--muted)}.kv span:last-child{text-align:right;overflow-wrap:anywhere;margin-left:12px}
            hr{border:0;border-top:2px solid var(--line);margin:36px 0}""";

    /**
     * Writes {@code run}/report.html. A run of several stages (a {@code stages:} run file: stages.json lists their
     * folders) gets one page with a section per stage.
     */
    public static Path write(Path run) throws IOException {
        var h = new StringBuilder("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">")
                .append("<title>tune4j run report</title><style>").append(CSS).append("</style></head><body><main>");
        h.append("<h1>tune4j run report</h1><div class=\"sub\">").append(esc(run.toAbsolutePath().toString())).append("</div>");
        JsonNode stages = read(run.resolve("stages.json"));
        if (stages != null) {
            int i = 1;
            for (JsonNode st : stages.path("stages")) {
                h.append("<hr><h1>Stage ").append(i++).append(": ").append(esc(st.path("stage").asText())).append("</h1>");
                stage(run.resolve(st.path("dir").asText()), h);
            }
        } else stage(run, h);
        h.append("</main></body></html>");
        Path out = run.resolve("report.html");
        AtomicFiles.writeString(out, h.toString());
        return out;
    }

    /** metrics.jsonl as one record per line; a cut or malformed line is an error naming the line. */
    private static List<JsonNode> metrics(Path run) throws IOException {
        Path metrics = run.resolve("metrics.jsonl");
        if (!Files.exists(metrics)) throw new dev.tune4j.hf.HfFormatException(run, "not a run folder (no metrics.jsonl)");
        var rows = new ArrayList<JsonNode>();
        int n = 0;
        try (var in = Files.newBufferedReader(metrics, StandardCharsets.UTF_8)) {
            for (String line; (line = in.readLine()) != null; ) {
                n++;
                if (line.isBlank()) continue;
                JsonNode r;
                try {
                    r = JSON.reader().with(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS).readTree(line);
                } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                    throw new dev.tune4j.hf.HfFormatException(metrics, "line " + n + ": not valid JSON (" + e.getOriginalMessage()
                            + "); a run killed mid-write leaves a cut last line: delete that line and run report again");
                }
                if (r == null || !r.isObject()) throw new dev.tune4j.hf.HfFormatException(metrics, "line " + n + ": expected a JSON object, found " + line.strip());
                rows.add(r);
            }
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new dev.tune4j.hf.HfFormatException(metrics, "line " + (n + 1) + ": invalid UTF-8");
        }
        return rows;
    }

    /** (step, value) for every record that has {@code field}. */
    private static List<double[]> series(List<JsonNode> rows, String field) {
        var out = new ArrayList<double[]>();
        for (JsonNode r : rows) if (r.has(field) && r.get(field).isNumber()) out.add(new double[]{r.path("step").asDouble(), r.get(field).asDouble()});
        return out;
    }

    private static List<double[]> percent(List<double[]> points) {
        return points.stream().map(p -> new double[]{p[0], 100 * p[1]}).toList();
    }

    private static void stage(Path run, StringBuilder h) throws IOException {
        List<JsonNode> rows = metrics(run);
        JsonNode summary = read(run.resolve("summary.json")), config = read(run.resolve("run_config.json"));
        var loss = series(rows, "loss");
        var tps = series(rows, "tokens_per_s");
        headline(summary, config, loss, tps, h);

        h.append("<h2>Curves</h2><div class=\"grid2\">");
        panel(h, Charts.lines("training loss and validation loss", List.of(new Charts.Series("train loss", Charts.PALETTE[0], loss, false),
                new Charts.Series("validation loss", Charts.PALETTE[1], series(rows, "val_loss"), true)), Units::number));
        panel(h, Charts.lines("learning rate", List.of(new Charts.Series("lr", Charts.PALETTE[2], series(rows, "lr"), false)), v -> Units.significant(v, 2)));
        var gn = series(rows, "grad_norm");
        if (!gn.isEmpty()) panel(h, Charts.lines("gradient norm (before clipping)", List.of(new Charts.Series("grad norm", Charts.PALETTE[3], gn, false)), Units::number));
        if (!tps.isEmpty()) panel(h, Charts.lines("throughput (tokens/s)", List.of(new Charts.Series("tokens/s", Charts.PALETTE[4], tps, false)), v -> Units.rate(v, "tok/s")));
        var rss = series(rows, "rss_mib");
        if (!rss.isEmpty()) { // ticks are round in the unit shown: GiB from 1 GiB on
            boolean gib = rss.stream().anyMatch(p -> p[1] >= 1024);
            if (gib) rss = rss.stream().map(p -> new double[]{p[0], p[1] / 1024}).toList();
            panel(h, Charts.lines(gib ? "resident memory (RSS, GiB)" : "resident memory (RSS, MiB)", List.of(new Charts.Series("RSS", Charts.PALETTE[5], rss, false)), v -> Units.significant(v, 3) + (gib ? " GiB" : " MiB")));
        }
        var margins = series(rows, "rewards/margins");
        if (!margins.isEmpty()) {
            panel(h, Charts.lines("reward margin (rewards/margins)", List.of(new Charts.Series("train", Charts.PALETTE[6], margins, false),
                    new Charts.Series("validation", Charts.PALETTE[1], series(rows, "eval_rewards/margins"), true)), Units::number));
            panel(h, Charts.lines("reward accuracy (rewards/accuracies, %)", List.of(new Charts.Series("train", Charts.PALETTE[7], percent(series(rows, "rewards/accuracies")), false),
                    new Charts.Series("validation", Charts.PALETTE[1], percent(series(rows, "eval_rewards/accuracies")), true)), v -> Units.significant(v, 3) + " %"));
        }
        h.append("</div>");

        phases(summary, h);
        memory(summary, h);
        spectrum(read(run.resolve("spectrum.json")), h);

        JsonNode forgetting = read(run.resolve("forgetting.json"));
        h.append("<h2>Forgetting check</h2>");
        if (forgetting == null) h.append("<p class=\"muted\">not run (train with <code>--general-file</code>)</p>");
        else {
            boolean flagged = forgetting.path("flagged").asBoolean();
            h.append("<div class=\"panel\"><span class=\"badge ").append(flagged ? "warn\">forgetting" : "ok\">ok").append("</span> general-text perplexity <b>")
                    .append(Units.number(forgetting.path("base_perplexity").asDouble())).append("</b> → <b>").append(Units.number(forgetting.path("tuned_perplexity").asDouble()))
                    .append("</b> (").append(Units.percent(forgetting.path("relative_increase").asDouble())).append(", flagged above ")
                    .append(Units.percent(forgetting.path("threshold").asDouble())).append(")</div>");
        }
        JsonNode samples = read(run.resolve("samples.json"));
        h.append("<h2>Sample generations (validation prompts)</h2>");
        if (samples == null || samples.isEmpty()) h.append("<p class=\"muted\">none (<code>--samples</code> sets how many)</p>");
        else {
            h.append("<div class=\"samples\">");
            for (JsonNode s : samples)
                h.append("<div class=\"sample\"><div><span class=\"k\">prompt</span>").append(esc(s.path("prompt").asText())).append("</div><div><span class=\"k\">expected</span>")
                        .append(esc(s.path("expected").asText())).append("</div><div><span class=\"k\">generated</span>").append(esc(s.path("answer").asText())).append("</div></div>");
            h.append("</div>");
        }
        h.append("<h2>Configuration</h2>");
        if (config == null) h.append("<p class=\"muted\">no run_config.json</p>");
        else h.append("<details><summary>").append(config.size()).append(" settings (run_config.json)</summary>").append(keyValues(config)).append("</details>");
        if (summary != null) h.append("<details><summary>every value of summary.json</summary>").append(keyValues(summary)).append("</details>");
    }

    private static void headline(JsonNode summary, JsonNode config, List<double[]> loss, List<double[]> tps, StringBuilder h) {
        h.append("<div style=\"margin-top:10px\">");
        if (config != null)
            for (String k : List.of("method", "stage")) if (config.has(k)) h.append("<span class=\"chip\">").append(esc(config.get(k).asText())).append("</span>");
        if (config != null && config.has("model")) h.append("<span class=\"sub\">").append(esc(config.get("model").asText())).append("</span>");
        h.append("</div>");
        if (summary == null) {
            h.append("<p class=\"muted\">no summary.json (run not finished?)</p>");
            return;
        }
        h.append("<div class=\"cards\">");
        card(h, "steps", Units.count(summary.path("steps").asDouble()), summary.path("stopped_early").asBoolean() ? "stopped early" : "");
        double first = loss.isEmpty() ? Double.NaN : loss.getFirst()[1];
        card(h, "train loss", Units.number(summary.path("last_train_loss").asDouble(Double.NaN)), Double.isNaN(first) ? "" : "from " + Units.number(first));
        if (summary.hasNonNull("best_val_loss"))
            card(h, "best val loss", Units.number(summary.get("best_val_loss").asDouble()), summary.hasNonNull("first_val_loss") ? "from " + Units.number(summary.get("first_val_loss").asDouble()) : "");
        if (!tps.isEmpty()) {
            double[] v = tps.stream().mapToDouble(p -> p[1]).sorted().toArray();
            card(h, "throughput", Units.rate(v[v.length / 2], "tok/s"), "median over steps");
        }
        double peak = trainingPeak(summary), predicted = summary.path("predicted_peak_mib").asDouble(Double.NaN);
        card(h, summary.has("training_peak_rss_mib") ? "peak memory in training" : "peak memory", Units.bytes(peak * 1048576), Double.isNaN(predicted) ? "" : "planner " + Units.bytes(predicted * 1048576) + " (" + Units.percent(predicted / peak - 1) + ")");
        card(h, "wall time", Units.duration(summary.path("seconds").asDouble(Double.NaN)), "");
        if (summary.has("trainable_parameters")) card(h, "trainable", Units.count(summary.get("trainable_parameters").asDouble()), "parameters");
        h.append("</div>");
    }

    private static void card(StringBuilder h, String key, String value, String note) {
        h.append("<div class=\"card\"><div class=\"k\">").append(esc(key)).append("</div><div class=\"v\">").append(esc(value)).append("</div><div class=\"n\">")
                .append(esc(note)).append("</div></div>");
    }

    private static void panel(StringBuilder h, String svg) {
        h.append("<div class=\"panel\">").append(svg).append("</div>");
    }

    private static void phases(JsonNode summary, StringBuilder h) {
        h.append("<h2>Time per phase</h2>");
        JsonNode p = summary == null ? null : summary.get("phase_seconds");
        if (p == null || p.isEmpty()) {
            h.append("<p class=\"muted\">not recorded</p>");
            return;
        }
        var segs = new LinkedHashMap<String, Double>();
        var colors = new LinkedHashMap<String, String>();
        p.properties().forEach(e -> {
            segs.put(e.getKey(), e.getValue().asDouble());
            colors.put(e.getKey(), Charts.PALETTE[colors.size() % Charts.PALETTE.length]);
        });
        double total = segs.values().stream().mapToDouble(Double::doubleValue).sum();
        h.append("<div class=\"panel\">").append(Charts.stacked(Map.of("wall time", segs), colors, Units::duration)).append(legend(segs, colors, v -> Units.duration(v) + " · "
                + Units.significant(100 * v / total, 2) + " %")).append("</div>");
    }

    /** The peak the planner predicts: the training loop's (runs before it was recorded: the whole run's). */
    private static double trainingPeak(JsonNode summary) {
        return summary.path("training_peak_rss_mib").asDouble(summary.path("peak_rss_mib").asDouble(Double.NaN));
    }

    private static void memory(JsonNode summary, StringBuilder h) {
        h.append("<h2>Memory: planner prediction and measured peak</h2>");
        if (summary == null || !summary.has("peak_rss_mib")) {
            h.append("<p class=\"muted\">not recorded</p>");
            return;
        }
        var bars = new LinkedHashMap<String, Map<String, Double>>();
        var colors = new LinkedHashMap<String, String>();
        var parts = new LinkedHashMap<String, Double>();
        JsonNode pp = summary.get("predicted_parts_mib");
        if (pp != null) pp.properties().forEach(e -> {
            if (e.getValue().asDouble() <= 0) return;
            parts.put(e.getKey(), e.getValue().asDouble());
            colors.put(e.getKey(), Charts.PALETTE[colors.size() % Charts.PALETTE.length]);
        });
        if (parts.isEmpty() && summary.has("predicted_peak_mib")) parts.put("predicted", summary.get("predicted_peak_mib").asDouble());
        bars.put("planner", parts);
        String measured = summary.has("training_peak_rss_mib") ? "measured peak in training (RSS)" : "measured peak (RSS)";
        bars.put("measured peak", Map.of(measured, trainingPeak(summary)));
        colors.put(measured, "#111827");
        double whole = summary.get("peak_rss_mib").asDouble();
        if (whole > trainingPeak(summary) + 16) { // loading, sample generation or the report went higher
            bars.put("whole run", Map.of("whole run's peak (RSS)", whole));
            colors.put("whole run's peak (RSS)", "#6b7280");
        }
        h.append("<div class=\"panel\">").append(Charts.stacked(bars, colors, v -> Units.bytes(v * 1048576)))
                .append(legend(parts, colors, v -> Units.bytes(v * 1048576))).append("</div>");
    }

    private static String legend(Map<String, Double> items, Map<String, String> colors, java.util.function.DoubleFunction<String> format) {
        var sb = new StringBuilder("<div class=\"legend\">");
        items.forEach((k, v) -> sb.append("<span><span class=\"sw\" style=\"background:").append(colors.getOrDefault(k, "#9ca3af")).append("\"></span>")
                .append(esc(k)).append(" <b>").append(esc(format.apply(v))).append("</b></span>"));
        return sb.append("</div>").toString();
    }

    private static final Pattern LAYER = Pattern.compile("layers\\.(\\d+)\\.");
    private static final List<String> MODULE_ORDER = List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    /** The spectrum as a layers × modules grid: colour = largest singular value, text = effective rank, red outline = a warning. */
    private static void spectrum(JsonNode spectrum, StringBuilder h) {
        h.append("<h2>Adapter spectrum</h2>");
        if (spectrum == null || spectrum.isEmpty()) {
            h.append("<p class=\"muted\">no spectrum.json (full fine-tuning and DoRA have none)</p>");
            return;
        }
        var cells = new TreeMap<String, Map<String, JsonNode>>(Comparator.comparingInt(Report::layerOrder).thenComparing(Comparator.naturalOrder()));
        var modules = new TreeSet<String>(Comparator.comparingInt((String m) -> MODULE_ORDER.contains(m) ? MODULE_ORDER.indexOf(m) : MODULE_ORDER.size()).thenComparing(Comparator.naturalOrder()));
        double lo = Double.MAX_VALUE, hi = 0;
        var warnings = new TreeMap<String, List<String>>();
        for (JsonNode m : spectrum) {
            String name = m.path("name").asText();
            var lm = LAYER.matcher(name);
            String row = lm.find() ? "layer " + lm.group(1) : name.substring(0, Math.max(0, name.lastIndexOf('.'))), module = name.substring(name.lastIndexOf('.') + 1);
            cells.computeIfAbsent(row, k -> new HashMap<>()).put(module, m);
            modules.add(module);
            double s = m.path("sigma").path(0).asDouble();
            lo = Math.min(lo, s);
            hi = Math.max(hi, s);
            String w = m.path("warning").asText("");
            if (!w.isEmpty() && !m.path("warning").isNull()) { // grouped by kind (Spectrum.Module.warning's three), each module with its detail
                int colon = w.indexOf(':');
                String kind = w.startsWith("rank collapse") ? "rank collapse" : w.endsWith("a smaller r would do") ? "a smaller r would do" : w;
                String detail = kind.equals(w) || colon < 0 ? "" : " (" + (kind.equals("rank collapse") ? w.substring(colon + 1) : w.substring(0, colon)).strip() + ")";
                warnings.computeIfAbsent(kind, k -> new ArrayList<>()).add(row + " " + module + detail);
            }
        }
        h.append("<div class=\"panel\"><div class=\"sub\" style=\"margin-bottom:6px\">").append(spectrum.size()).append(" modules; colour: largest singular value σ<sub>max</sub> of scale·B·A (")
                .append(esc(Units.number(lo))).append(" <span class=\"sw\" style=\"background:").append(Charts.blue(0)).append(";border:1px solid #ccc\"></span>… <span class=\"sw\" style=\"background:")
                .append(Charts.blue(1)).append("\"></span> ").append(esc(Units.number(hi))).append("); number: effective rank of r ")
                .append(spectrum.path(0).path("r").asInt()).append("; <span class=\"warn\">red outline: a warning</span> (hover a cell for details)</div>");
        h.append("<table class=\"heat\"><tr><th></th>");
        for (String mod : modules) h.append("<th>").append(esc(mod)).append("</th>");
        h.append("</tr>");
        for (var row : cells.entrySet()) {
            h.append("<tr><th style=\"text-align:right\">").append(esc(row.getKey())).append("</th>");
            for (String mod : modules) {
                JsonNode m = row.getValue().get(mod);
                if (m == null) {
                    h.append("<td></td>");
                    continue;
                }
                double s = m.path("sigma").path(0).asDouble(), t = hi > lo ? (s - lo) / (hi - lo) : 0.5;
                boolean warn = !m.path("warning").isNull() && !m.path("warning").asText("").isEmpty();
                h.append("<td").append(warn ? " class=\"w\"" : "").append(" style=\"background:").append(Charts.blue(t)).append(";color:").append(t > 0.55 ? "#fff" : "#111827")
                        .append("\" title=\"").append(esc(m.path("name").asText() + ": σmax " + Units.number(s) + ", effective rank " + Units.significant(m.path("effective_rank").asDouble(), 3)
                                + ", used rank " + m.path("used_rank").asInt() + " of " + m.path("r").asInt() + ", top-1 energy " + Units.significant(100 * m.path("top1_energy").asDouble(), 3) + " %"
                                + (warn ? "; " + m.path("warning").asText() : ""))).append("\">")
                        .append(esc(Units.significant(m.path("effective_rank").asDouble(), 2))).append(warn ? "!" : "").append("</td>");
            }
            h.append("</tr>");
        }
        h.append("</table>");
        if (warnings.isEmpty()) h.append("<p class=\"ok\">no warnings</p>");
        else {
            h.append("<ul>");
            warnings.forEach((w, names) -> h.append("<li><span class=\"warn\">").append(esc(w)).append("</span> in ").append(names.size()).append(" module")
                    .append(names.size() == 1 ? "" : "s").append(": ").append(esc(String.join("; ", names.subList(0, Math.min(8, names.size())))))
                    .append(names.size() > 8 ? "; …" : "").append("</li>"));
            h.append("</ul>");
        }
        h.append("</div>");
    }

    private static int layerOrder(String row) {
        return row.startsWith("layer ") ? Integer.parseInt(row.substring(6)) : Integer.MAX_VALUE;
    }

    private static JsonNode read(Path p) throws IOException {
        return Files.exists(p) ? JSON.readTree(p.toFile()) : null;
    }

    /** An object's fields as rounded values in a two-column grid. */
    private static String keyValues(JsonNode obj) {
        var sb = new StringBuilder("<div class=\"kv\">");
        obj.properties().forEach(e -> {
            JsonNode v = e.getValue();
            String text = v.isNull() ? "–" : v.isTextual() ? v.asText() : v.isFloatingPointNumber() ? Units.number(v.asDouble()) : v.isNumber() ? v.asText()
                    : v.isObject() ? objectLine(v) : v.toString();
            sb.append("<div><span>").append(esc(e.getKey())).append("</span><span>").append(esc(text)).append("</span></div>");
        });
        return sb.append("</div>").toString();
    }

    private static String objectLine(JsonNode v) {
        var parts = new ArrayList<String>();
        v.properties().forEach(e -> parts.add(e.getKey() + " " + (e.getValue().isFloatingPointNumber() ? Units.number(e.getValue().asDouble()) : e.getValue().asText())));
        return String.join(", ", parts);
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
