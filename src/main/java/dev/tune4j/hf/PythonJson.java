package dev.tune4j.hf;

import java.util.*;

/**
 * JSON text exactly as Python's {@code json.dumps(value, indent=2, sort_keys=True)} writes it (what PEFT and
 * transformers write for their config files): ": " between key and value, one item per line, {} and [] for empty
 * containers, floats in shortest round-trip form with a ".0" on integral values.
 */
public final class PythonJson {
    private PythonJson() {}

    public static String dumps(Object value) {
        var sb = new StringBuilder();
        write(sb, value, 0);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, int depth) {
        if (v == null) sb.append("null");
        else if (v instanceof Boolean b) sb.append(b);
        else if (v instanceof Integer || v instanceof Long || v instanceof Short) sb.append(v);
        else if (v instanceof Number n) sb.append(floatRepr(n.doubleValue()));
        else if (v instanceof String s) quote(sb, s);
        else if (v instanceof Collection<?> c) {
            if (c.isEmpty()) {
                sb.append("[]");
                return;
            }
            sb.append('[');
            boolean first = true;
            for (Object o : c) {
                sb.append(first ? "" : ",").append('\n').append("  ".repeat(depth + 1));
                write(sb, o, depth + 1);
                first = false;
            }
            sb.append('\n').append("  ".repeat(depth)).append(']');
        } else if (v instanceof Map<?, ?> m) {
            if (m.isEmpty()) {
                sb.append("{}");
                return;
            }
            sb.append('{');
            var keys = new ArrayList<String>();
            m.keySet().forEach(k -> keys.add(k.toString()));
            Collections.sort(keys);
            boolean first = true;
            for (String k : keys) {
                sb.append(first ? "" : ",").append('\n').append("  ".repeat(depth + 1));
                quote(sb, k);
                sb.append(": ");
                write(sb, m.get(k), depth + 1);
                first = false;
            }
            sb.append('\n').append("  ".repeat(depth)).append('}');
        } else throw new IllegalArgumentException("not JSON-serializable: " + v.getClass());
    }

    /**
     * Python's repr(float): the shortest digits that round-trip (as Java's Double.toString since JDK 19), laid out as
     * Python does: positional for decimal exponents −4 … 15 ("0.0001", "123.0"), else "1.5e-07" / "1e+16".
     */
    public static String floatRepr(double d) {
        if (Double.isNaN(d)) return "nan";
        if (Double.isInfinite(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        var bd = new java.math.BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int exp = digits.length() - 1 - bd.scale();
        String sign = d < 0 ? "-" : "";
        if (exp >= -4 && exp < 16) {
            if (exp >= 0) {
                if (digits.length() <= exp + 1) return sign + digits + "0".repeat(exp + 1 - digits.length()) + ".0";
                return sign + digits.substring(0, exp + 1) + "." + digits.substring(exp + 1);
            }
            return sign + "0." + "0".repeat(-exp - 1) + digits;
        }
        String mant = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + mant + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
    }

    /** ensure_ascii=True, as json.dumps defaults. */
    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20 || c > 0x7e) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
