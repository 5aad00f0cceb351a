package dev.tune4j.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.AtomicFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * {@code report.html} for a run folder: one self-contained page (no scripts, no network) with the loss, validation-loss
 * and learning-rate curves as SVG images, the resolved config, memory, the adapter spectrum, the forgetting check and
 * sample generations, read from the files the run left (run_config.json, metrics.jsonl, summary.json, spectrum.json,
 * forgetting.json, samples.json). Missing parts are said to be missing.
 */
public final class Report {
    private Report() {}

    static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Writes {@code run}/report.html. A run of several stages (a {@code stages:} run file: stages.json lists their
     * folders) gets one page with a section per stage.
     */
    public static Path write(Path run) throws IOException {
        var h = new StringBuilder("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tune4j run report</title><style>")
                .append("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}")
                .append("td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}th{background:#f3f3f3}")
                .append(".warn{color:#b00}.ok{color:#070}img{border:1px solid #ddd;margin:4px}</style></head><body>");
        h.append("<h1>tune4j run report</h1><p>").append(esc(run.toAbsolutePath().toString())).append("</p>");
        JsonNode stages = read(run.resolve("stages.json"));
        if (stages != null) {
            int i = 1;
            for (JsonNode st : stages.path("stages")) {
                h.append("<hr><h1>Stage ").append(i++).append(": ").append(esc(st.path("stage").asText())).append("</h1>");
                stage(run.resolve(st.path("dir").asText()), h);
            }
        } else stage(run, h);
        h.append("</body></html>");
        Path out = run.resolve("report.html");
        AtomicFiles.writeString(out, h.toString());
        return out;
    }

    private static void stage(Path run, StringBuilder h) throws IOException {
        if (!Files.exists(run.resolve("metrics.jsonl"))) throw new dev.tune4j.hf.HfFormatException(run, "not a run folder (no metrics.jsonl)");
        var steps = new ArrayList<double[]>(); // step, loss, lr, reward margin, reward accuracy
        var vals = new ArrayList<double[]>();  // step, val_loss
        boolean preference = false;
        Path metrics = run.resolve("metrics.jsonl");
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
                double step = r.path("step").asDouble();
                preference |= r.has("rewards/margins");
                if (r.has("loss")) steps.add(new double[]{step, r.get("loss").asDouble(), r.path("lr").asDouble(),
                        r.path("rewards/margins").asDouble(Double.NaN), r.path("rewards/accuracies").asDouble(Double.NaN)});
                if (r.has("val_loss")) vals.add(new double[]{step, r.get("val_loss").asDouble()});
            }
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new dev.tune4j.hf.HfFormatException(metrics, "line " + (n + 1) + ": invalid UTF-8");
        }
        JsonNode summary = read(run.resolve("summary.json"));
        h.append("<h2>Summary</h2>");
        if (summary == null) h.append("<p>no summary.json (run not finished?)</p>");
        else h.append(table(summary));
        h.append("<h2>Curves</h2>");
        h.append(figure("training loss (line) and validation loss (dots)", steps, 1, vals));
        h.append(figure("learning rate", steps, 2, List.of()));
        if (preference) {
            h.append(figure("reward margin (rewards/margins)", steps, 3, List.of()));
            h.append(figure("reward accuracy (rewards/accuracies)", steps, 4, List.of()));
        }

        h.append("<h2>Memory</h2><table><tr><th>planner prediction</th><th>measured peak resident memory</th></tr><tr><td>")
                .append(summary != null && summary.has("predicted_peak_mib") ? summary.get("predicted_peak_mib").asText() + " MiB" : "—")
                .append("</td><td>").append(summary == null ? "—" : String.format("%.0f MiB", summary.path("peak_rss_mib").asDouble())).append("</td></tr></table>");

        JsonNode spectrum = read(run.resolve("spectrum.json"));
        h.append("<h2>Adapter spectrum</h2>");
        if (spectrum == null) h.append("<p>no spectrum.json</p>");
        else {
            h.append("<table><tr><th>module</th><th>r</th><th>σ max</th><th>effective rank</th><th>used</th><th>top-1 energy</th><th>condition</th><th>warning</th></tr>");
            for (JsonNode m : spectrum)
                h.append(String.format("<tr><td>%s</td><td>%d</td><td>%.4g</td><td>%.2f</td><td>%d</td><td>%.1f%%</td><td>%.3g</td><td class=\"warn\">%s</td></tr>",
                        esc(m.path("name").asText()), m.path("r").asInt(), m.path("sigma").path(0).asDouble(), m.path("effective_rank").asDouble(),
                        m.path("used_rank").asInt(), 100 * m.path("top1_energy").asDouble(), m.path("condition").asDouble(), esc(m.path("warning").asText(""))));
            h.append("</table>");
        }
        JsonNode forgetting = read(run.resolve("forgetting.json"));
        h.append("<h2>Forgetting check</h2>");
        if (forgetting == null) h.append("<p>not run (train with <code>--general-file</code>)</p>");
        else h.append("<p class=\"").append(forgetting.path("flagged").asBoolean() ? "warn" : "ok").append("\">").append(esc(forgetting.path("summary").asText())).append("</p>");
        JsonNode samples = read(run.resolve("samples.json"));
        h.append("<h2>Sample generations (validation prompts)</h2>");
        if (samples == null || samples.isEmpty()) h.append("<p>none</p>");
        else {
            h.append("<table><tr><th>prompt</th><th>expected</th><th>generated</th></tr>");
            for (JsonNode s : samples)
                h.append("<tr><td><pre>").append(esc(s.path("prompt").asText())).append("</pre></td><td>").append(esc(s.path("expected").asText()))
                        .append("</td><td>").append(esc(s.path("answer").asText())).append("</td></tr>");
            h.append("</table>");
        }
        JsonNode config = read(run.resolve("run_config.json"));
        h.append("<h2>Configuration</h2>").append(config == null ? "<p>no run_config.json</p>" : table(config));
    }

    private static JsonNode read(Path p) throws IOException {
        return Files.exists(p) ? JSON.readTree(p.toFile()) : null;
    }

    private static String table(JsonNode obj) {
        var sb = new StringBuilder("<table>");
        obj.properties().forEach(e -> sb.append("<tr><th>").append(esc(e.getKey())).append("</th><td>").append(esc(e.getValue().isTextual() ? e.getValue().asText() : e.getValue().toString())).append("</td></tr>"));
        return sb.append("</table>").toString();
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    /** A chart as an inline SVG image whose alt text is its title. */
    private static String figure(String title, List<double[]> rows, int col, List<double[]> dots) {
        String svg = chart(title, rows, col, dots);
        return "<img alt=\"" + esc(title) + "\" src=\"data:image/svg+xml;base64," + Base64.getEncoder().encodeToString(svg.getBytes(StandardCharsets.UTF_8)) + "\">";
    }

    /** A line chart of column {@code col} of {@code rows} against step, with optional dots. */
    static String chart(String title, List<double[]> rows, int col, List<double[]> dots) {
        int w = 520, hgt = 300, left = 60, right = 15, top = 30, bottom = 40;
        var sb = new StringBuilder(String.format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">", w, hgt));
        sb.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        sb.append(String.format("<text x=\"%d\" y=\"18\" font-size=\"13\">%s</text>", left, esc(title)));
        if (rows.isEmpty()) return sb.append("<text x=\"60\" y=\"150\">no data</text></svg>").toString();
        double x0 = rows.getFirst()[0], x1 = rows.getLast()[0], y0 = Double.MAX_VALUE, y1 = -Double.MAX_VALUE;
        for (double[] r : rows) {
            y0 = Math.min(y0, r[col]);
            y1 = Math.max(y1, r[col]);
        }
        for (double[] d : dots) {
            y0 = Math.min(y0, d[1]);
            y1 = Math.max(y1, d[1]);
        }
        if (x1 == x0) x1 = x0 + 1;
        if (y1 == y0) y1 = y0 + 1;
        double fx0 = x0, fx1 = x1, fy0 = y0, fy1 = y1;
        java.util.function.DoubleUnaryOperator px = x -> left + (x - fx0) / (fx1 - fx0) * (w - left - right);
        java.util.function.DoubleUnaryOperator py = y -> top + (1 - (y - fy0) / (fy1 - fy0)) * (hgt - top - bottom);
        sb.append(String.format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>", left, hgt - bottom, w - right, hgt - bottom));
        sb.append(String.format("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>", left, top, left, hgt - bottom));
        sb.append(String.format("<text x=\"4\" y=\"%d\">%.3g</text><text x=\"4\" y=\"%d\">%.3g</text>", top + 4, y1, hgt - bottom, y0));
        sb.append(String.format("<text x=\"%d\" y=\"%d\">step %.0f</text><text x=\"%d\" y=\"%d\">%.0f</text>", left, hgt - 22, x0, w - right - 40, hgt - 22, x1));
        sb.append("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
        for (double[] r : rows) sb.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.applyAsDouble(r[0]), py.applyAsDouble(r[col])));
        sb.append("\"/>");
        for (double[] d : dots)
            sb.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#d62728\"/>", px.applyAsDouble(d[0]), py.applyAsDouble(d[1])));
        return sb.append("</svg>").toString();
    }
}
