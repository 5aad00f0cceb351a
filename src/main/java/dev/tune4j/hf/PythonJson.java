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
        return dumps(value, 2, true, true, null, null);
    }

    /**
     * json.dumps(value, indent=indent, sort_keys=sortKeys, ensure_ascii=ensureAscii, separators=(itemSep, keySep)); null
     * separators mean Python's defaults: (", ", ": "), or (",", ": ") with an indent. Lists, maps, strings, numbers,
     * booleans and null; anything else is refused as Python refuses it.
     */
    public static String dumps(Object value, Integer indent, boolean sortKeys, boolean ensureAscii, String itemSep, String keySep) {
        var sb = new StringBuilder();
        String item = itemSep != null ? itemSep : indent == null ? ", " : ",", key = keySep != null ? keySep : ": ";
        new Style(indent, sortKeys, ensureAscii, item, key).write(sb, value, 0);
        return sb.toString();
    }

    private record Style(Integer indent, boolean sortKeys, boolean ensureAscii, String item, String key) {
        void write(StringBuilder sb, Object v, int depth) {
            if (v == null) sb.append("null");
            else if (v instanceof Boolean b) sb.append(b);
            else if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) sb.append(v);
            else if (v instanceof Number n) sb.append(jsonFloat(n.doubleValue()));
            else if (v instanceof CharSequence s) quote(sb, s.toString(), ensureAscii);
            else if (v instanceof Collection<?> c) {
                if (c.isEmpty()) {
                    sb.append("[]");
                    return;
                }
                sb.append('[');
                boolean first = true;
                for (Object o : c) {
                    if (!first) sb.append(item);
                    newline(sb, depth + 1);
                    write(sb, o, depth + 1);
                    first = false;
                }
                newline(sb, depth);
                sb.append(']');
            } else if (v instanceof Map<?, ?> m) {
                if (m.isEmpty()) {
                    sb.append("{}");
                    return;
                }
                sb.append('{');
                var keys = new ArrayList<String>();
                m.keySet().forEach(k -> keys.add(k.toString()));
                if (sortKeys) Collections.sort(keys);
                var byName = new HashMap<String, Object>();
                m.forEach((k, x) -> byName.put(k.toString(), x));
                boolean first = true;
                for (String k : keys) {
                    if (!first) sb.append(item);
                    newline(sb, depth + 1);
                    quote(sb, k, ensureAscii);
                    sb.append(key);
                    write(sb, byName.get(k), depth + 1);
                    first = false;
                }
                newline(sb, depth);
                sb.append('}');
            } else throw new IllegalArgumentException("Object of type " + v.getClass().getSimpleName() + " is not JSON serializable");
        }

        void newline(StringBuilder sb, int depth) {
            if (indent != null) sb.append('\n').append(" ".repeat(indent * depth));
        }
    }

    /** json.dumps's float form: NaN/Infinity spelled as JavaScript, otherwise repr. */
    static String jsonFloat(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        return floatRepr(d);
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

    /** A JSON string as Python writes it; with ensureAscii every non-ASCII char becomes \\uXXXX (surrogates kept as pairs). */
    private static void quote(StringBuilder sb, String s, boolean ensureAscii) {
        sb.append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || (ensureAscii && c > 0x7f)) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
