package dev.tune4j.eval;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.DoubleFunction;

/**
 * Inline SVG for the report: line charts over steps, a heat map, horizontal bars. Plain strings, sized by viewBox so
 * they scale with the page; every number on them goes through {@link Units}.
 */
final class Charts {
    private Charts() {}

    static final String[] PALETTE = {"#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"};

    /** One curve: (x, y) points, drawn as a line or as dots. */
    record Series(String name, String color, List<double[]> points, boolean dots) {}

    /** A line chart of the series against step; {@code format} writes the last value, with its unit (the ticks are plain numbers). */
    static String lines(String title, List<Series> series, DoubleFunction<String> format) {
        int w = 560, h = 250, left = 62, right = 16, top = 40, bottom = 34;
        double x0 = Double.MAX_VALUE, x1 = -Double.MAX_VALUE, y0 = Double.MAX_VALUE, y1 = -Double.MAX_VALUE;
        for (Series s : series)
            for (double[] p : s.points()) {
                if (!Double.isFinite(p[1])) continue;
                x0 = Math.min(x0, p[0]);
                x1 = Math.max(x1, p[0]);
                y0 = Math.min(y0, p[1]);
                y1 = Math.max(y1, p[1]);
            }
        var sb = new StringBuilder(String.format(Locale.ROOT, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">", w, h, Report.esc(title)));
        sb.append("<title>").append(Report.esc(title)).append("</title>");
        sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"20\" class=\"ct\">%s</text>", 12, Report.esc(title)));
        if (x0 > x1) return sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" class=\"muted\">no data</text></svg>", w / 2 - 24, h / 2)).toString();
        // the last value of the first series, large, at the top right: what people look for first
        Series main = series.getFirst();
        if (!main.points().isEmpty())
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"22\" text-anchor=\"end\" class=\"cv\">%s</text>", w - right, Report.esc(format.apply(main.points().getLast()[1]))));
        if (x1 == x0) {
            x0 -= 0.5;
            x1 += 0.5;
        }
        double[] yt = ticks(y0, y1);
        y0 = Math.min(y0, yt[0]);
        y1 = Math.max(y1, yt[yt.length - 1]);
        if (y1 == y0) y1 = y0 + 1;
        double fx0 = x0, fx1 = x1, fy0 = y0, fy1 = y1;
        DoubleFunction<Double> px = x -> left + (x - fx0) / (fx1 - fx0) * (w - left - right);
        DoubleFunction<Double> py = y -> top + (1 - (y - fy0) / (fy1 - fy0)) * (h - top - bottom);
        for (double t : yt) {
            double y = py.apply(t);
            sb.append(String.format(Locale.ROOT, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", left, w - right, y, y));
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%s</text>", left - 6, y + 4, tick(t, yt[1] - yt[0])));
        }
        for (double t : ticks(fx0, fx1)) {
            if (t != Math.rint(t) || t < fx0 || t > fx1) continue; // steps are whole numbers
            double x = px.apply(t);
            sb.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"tick\">%s</text>", x, h - bottom + 16, Units.count(t)));
        }
        sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"tick\">step</text>", w - right, h - 4));
        sb.append(String.format(Locale.ROOT, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"axis\"/>", left, w - right, h - bottom, h - bottom));
        int legendX = left;
        for (Series s : series) {
            var pts = s.points().stream().filter(p -> Double.isFinite(p[1])).toList();
            if (s.dots() || pts.size() == 1)
                for (double[] p : pts)
                    sb.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>step %s: %s</title></circle>",
                            px.apply(p[0]), py.apply(p[1]), s.color(), Units.count(p[0]), Report.esc(format.apply(p[1]))));
            else {
                sb.append("<polyline fill=\"none\" stroke=\"").append(s.color()).append("\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"");
                for (double[] p : pts) sb.append(String.format(Locale.ROOT, "%.1f,%.1f ", px.apply(p[0]), py.apply(p[1])));
                sb.append("\"/>");
            }
            if (series.size() > 1) { // a legend only where there is something to tell apart
                sb.append(String.format(Locale.ROOT, "<circle cx=\"%d\" cy=\"30\" r=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"34\" class=\"tick\">%s</text>",
                        legendX + 4, s.color(), legendX + 12, Report.esc(s.name())));
                legendX += 24 + 7 * s.name().length();
            }
        }
        return sb.append("</svg>").toString();
    }

    /** A tick label: as many decimals as the tick step needs (so 1.272 and 1.274 stay apart), "10 k" from 10,000 on; the unit is in the title. */
    static String tick(double t, double step) {
        if (t == 0) return "0";
        if (step < 1e-3) // enough digits to tell neighbouring ticks apart: 8.694 and 8.695 GiB, 1.5e-4 and 2.0e-4
            return Units.significant(t, Math.max(2, (int) Math.floor(Math.log10(Math.abs(t))) - (int) Math.floor(Math.log10(step)) + 1));
        if (Math.abs(t) >= 1e4 && step >= 1e3) return Units.count(t);
        int decimals = (int) Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
        return String.format(Locale.ROOT, "%." + decimals + "f", t);
    }

    /** About five round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10ⁿ). */
    static double[] ticks(double lo, double hi) {
        if (!(hi > lo)) {
            double pad = lo == 0 ? 1 : Math.abs(lo) * 0.1;
            lo -= pad;
            hi += pad;
        }
        double raw = (hi - lo) / 4, mag = Math.pow(10, Math.floor(Math.log10(raw))), step;
        double f = raw / mag;
        step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
        double start = Math.floor(lo / step) * step, end = Math.ceil(hi / step) * step;
        var out = new ArrayList<Double>();
        for (double t = start; t <= end + step / 2; t += step) out.add(Math.abs(t) < step * 1e-9 ? 0 : Math.round(t / step) * step);
        return out.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** A light-to-dark blue for a value in [0, 1]. */
    static String blue(double t) {
        t = Math.max(0, Math.min(1, t));
        int r = (int) Math.round(239 + (30 - 239) * t), g = (int) Math.round(246 + (64 - 246) * t), b = (int) Math.round(255 + (175 - 255) * t);
        return String.format("#%02x%02x%02x", r, g, b);
    }

    /** Horizontal stacked bars sharing one scale: label → (segment name → value); {@code format} writes values. */
    static String stacked(Map<String, Map<String, Double>> bars, Map<String, String> colors, DoubleFunction<String> format) {
        int w = 1000, left = 150, right = 110, barH = 26, gap = 14, top = 8;
        double max = bars.values().stream().mapToDouble(m -> m.values().stream().mapToDouble(Double::doubleValue).sum()).max().orElse(1);
        if (!(max > 0)) max = 1;
        int h = top + bars.size() * (barH + gap);
        var sb = new StringBuilder(String.format(Locale.ROOT, "<svg class=\"bars\" viewBox=\"0 0 %d %d\" role=\"img\">", w, h));
        int y = top;
        for (var bar : bars.entrySet()) {
            sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lbl\">%s</text>", left - 10, y + barH / 2 + 5, Report.esc(bar.getKey())));
            double x = left, total = 0;
            for (var seg : bar.getValue().entrySet()) {
                double sw = seg.getValue() / max * (w - left - right);
                total += seg.getValue();
                if (sw <= 0) continue;
                sb.append(String.format(Locale.ROOT, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" rx=\"3\"><title>%s: %s</title></rect>",
                        x, y, Math.max(sw - 1, 0.5), barH, colors.getOrDefault(seg.getKey(), "#9ca3af"), Report.esc(seg.getKey()), Report.esc(format.apply(seg.getValue()))));
                if (sw > 60) // a label inside the segment when it fits
                    sb.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" class=\"inbar\">%s</text>", x + 5, y + barH / 2 + 4, Report.esc(format.apply(seg.getValue()))));
                x += sw;
            }
            sb.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" class=\"lbl b\">%s</text>", x + 8, y + barH / 2 + 5, Report.esc(format.apply(total))));
            y += barH + gap;
        }
        return sb.append("</svg>").toString();
    }
}
