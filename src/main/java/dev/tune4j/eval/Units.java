package dev.tune4j.eval;

import java.util.Locale;

/**
 * Numbers as people read them, for the report and the run log: 11.95 rather than 11.949314283288043, 2.1 GiB, 372 tok/s,
 * 3 min 12 s. Four significant digits for measurements, three for sizes and rates; scientific notation only for
 * magnitudes a decimal would hide (learning rates such as 2.0e-4).
 */
public final class Units {
    private Units() {}

    /** A measurement (loss, norm, perplexity) to four significant digits; "–" for NaN. */
    public static String number(double v) {
        return significant(v, 4);
    }

    /** {@code v} to {@code digits} significant digits, without trailing zeros; scientific below 1e-3 and from 1e6. */
    public static String significant(double v, int digits) {
        if (Double.isNaN(v)) return "–";
        if (Double.isInfinite(v)) return v > 0 ? "∞" : "−∞";
        if (v == 0) return "0";
        double a = Math.abs(v);
        if (a < 1e-3 || a >= 1e6) {
            int exp = (int) Math.floor(Math.log10(a));
            double mant = v / Math.pow(10, exp);
            if (Math.abs(Math.round(mant * 10) / 10.0) >= 10) { // 9.96e-4 rounds to 10.0e-4: write 1.0e-3
                mant /= 10;
                exp++;
            }
            return String.format(Locale.ROOT, "%.1fe%d", mant, exp);
        }
        int decimals = Math.max(0, digits - 1 - (int) Math.floor(Math.log10(a)));
        String s = String.format(Locale.ROOT, "%." + decimals + "f", v);
        if (s.contains(".")) s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        return s;
    }

    /** Bytes in binary units: "812 MiB", "2.13 GiB", "512 B". */
    public static String bytes(double b) {
        if (Double.isNaN(b)) return "–";
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        int u = 0;
        double v = b;
        while (Math.abs(v) >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return (u == 0 ? String.valueOf(Math.round(v)) : significant(v, 3)) + " " + units[u];
    }

    /** Seconds as "340 ms", "3.2 s", "42 s", "3 min 12 s", "1 h 04 min". */
    public static String duration(double s) {
        if (Double.isNaN(s) || s < 0) return "–";
        if (s < 1) return Math.round(s * 1000) + " ms";
        if (s < 10) return String.format(Locale.ROOT, "%.1f s", s);
        long r = Math.round(s);
        if (r < 60) return r + " s";
        if (r < 3600) return r / 60 + " min " + r % 60 + " s";
        long m = Math.round(s / 60);
        return String.format(Locale.ROOT, "%d h %02d min", m / 60, m % 60);
    }

    /** A rate with its unit, three significant digits: "372 tok/s", "1.25 it/s". */
    public static String rate(double v, String unit) {
        return significant(v, 3) + " " + unit;
    }

    /** A count with a short multiplier: "950", "12.3 k", "494 M", "1.24 B". */
    public static String count(double n) {
        double a = Math.abs(n);
        if (a < 1e4) return significant(n, 4);
        if (a < 1e6) return significant(n / 1e3, 3) + " k";
        if (a < 1e9) return significant(n / 1e6, 3) + " M";
        return significant(n / 1e9, 3) + " B";
    }

    /** A signed percentage: "+12.3 %", "−4 %". */
    public static String percent(double fraction) {
        if (Double.isNaN(fraction)) return "–";
        String s = significant(Math.abs(100 * fraction), 3);
        return (fraction < 0 ? "−" : "+") + s + " %";
    }
}
