package dev.tune4j.text;

import java.util.*;

/**
 * Python value semantics for template values (String, Long, Double, Boolean, null = None, List, Map, {@link #UNDEFINED}):
 * truthiness, str(), repr(), equality, ordering and json.dumps, as Jinja2 inherits them from Python.
 */
final class Py {
    private Py() {}

    /**
     * Jinja's default Undefined: falsy, renders as "", iterates as empty, equals only another Undefined; reading an
     * attribute or item of it, calling it, arithmetic and ordering raise UndefinedError with the hint that says how it
     * came about ("'foo' is undefined", "'dict object' has no attribute 'bar'").
     */
    static final class Undefined {
        final String hint;

        Undefined(String hint) {
            this.hint = hint;
        }

        TemplateException error(String template) {
            return new TemplateException(template + ": UndefinedError: " + hint);
        }

        @Override
        public String toString() {
            return "";
        }
    }

    static final Undefined UNDEFINED = new Undefined("value is undefined");

    static boolean isUndefined(Object v) {
        return v instanceof Undefined;
    }

    /** jinja2's object_type_repr: "dict object", "str object", "None". */
    static String objectType(Object v) {
        return v == null ? "None" : v instanceof TemplateRenderer.Namespace ? "jinja2.utils.Namespace object" : typeName(v) + " object";
    }

    static boolean truthy(Object v) {
        if (v == null || v instanceof Undefined) return false;
        if (v instanceof Boolean b) return b;
        if (v instanceof Long l) return l != 0;
        if (v instanceof Double d) return d != 0;
        if (v instanceof String s) return !s.isEmpty();
        if (v instanceof Collection<?> c) return !c.isEmpty();
        if (v instanceof Map<?, ?> m) return !m.isEmpty();
        return true;
    }

    /** Normalises Java numbers to Long/Double so arithmetic and equality behave as Python's. */
    static Object norm(Object v) {
        if (v instanceof Integer || v instanceof Short || v instanceof Byte) return ((Number) v).longValue();
        if (v instanceof Float f) return f.doubleValue();
        return v;
    }

    static String str(Object v) {
        v = norm(v);
        if (v instanceof Undefined) return "";
        if (v instanceof String s) return s;
        return repr(v);
    }

    static String repr(Object v) {
        v = norm(v);
        if (v == null) return "None";
        if (v instanceof Undefined) return "";
        if (v instanceof Boolean b) return b ? "True" : "False";
        if (v instanceof Long l) return l.toString();
        if (v instanceof Double d) return floatRepr(d);
        if (v instanceof String s) {
            String q = s.contains("'") && !s.contains("\"") ? "\"" : "'";
            var sb = new StringBuilder(q);
            for (char c : s.toCharArray()) {
                switch (c) {
                    case '\\' -> sb.append("\\\\");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    default -> {
                        if (String.valueOf(c).equals(q)) sb.append('\\');
                        sb.append(c);
                    }
                }
            }
            return sb.append(q).toString();
        }
        if (v instanceof List<?> l) {
            var sj = new StringJoiner(", ", "[", "]");
            for (Object o : l) sj.add(repr(o));
            return sj.toString();
        }
        if (v instanceof Map<?, ?> m) {
            var sj = new StringJoiner(", ", "{", "}");
            for (var e : m.entrySet()) sj.add(repr(e.getKey()) + ": " + repr(e.getValue()));
            return sj.toString();
        }
        return v.toString();
    }

    static String floatRepr(double d) {
        return dev.tune4j.hf.PythonJson.floatRepr(d);
    }

    static boolean equal(Object a, Object b) {
        a = norm(a);
        b = norm(b);
        if (a == b) return true;
        if (a instanceof Undefined || b instanceof Undefined) return a instanceof Undefined && b instanceof Undefined;
        if (a == null || b == null) return false;
        if (a instanceof Number x && b instanceof Number y) return x.doubleValue() == y.doubleValue();
        if (a instanceof Boolean x && b instanceof Number y) return (x ? 1 : 0) == y.doubleValue();
        if (a instanceof Number x && b instanceof Boolean y) return (y ? 1 : 0) == x.doubleValue();
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x.size() != y.size()) return false;
            for (int i = 0; i < x.size(); i++) if (!equal(x.get(i), y.get(i))) return false;
            return true;
        }
        return a.equals(b);
    }

    static int compare(Object a, Object b) {
        a = norm(a);
        b = norm(b);
        if (a instanceof Boolean x) a = x ? 1L : 0L;
        if (b instanceof Boolean y) b = y ? 1L : 0L;
        if (a instanceof Number x && b instanceof Number y) return Double.compare(x.doubleValue(), y.doubleValue());
        if (a instanceof String x && b instanceof String y) return x.compareTo(y);
        if (a instanceof List<?> x && b instanceof List<?> y) {
            for (int i = 0; i < Math.min(x.size(), y.size()); i++) {
                int c = compare(x.get(i), y.get(i));
                if (c != 0) return c;
            }
            return Integer.compare(x.size(), y.size());
        }
        throw new TemplateException("cannot compare " + typeName(a) + " with " + typeName(b));
    }

    static String typeName(Object v) {
        v = norm(v);
        if (v == null) return "NoneType";
        if (v instanceof Undefined) return "Undefined";
        if (v instanceof String) return "str";
        if (v instanceof Long) return "int";
        if (v instanceof Double) return "float";
        if (v instanceof Boolean) return "bool";
        if (v instanceof List) return "list";
        if (v instanceof Map) return "dict";
        return v.getClass().getSimpleName();
    }

    /** tojson: json.dumps(v, ensure_ascii=False, …) as transformers' filter calls it; Undefined is not serializable. */
    static String json(Object v, Integer indent, boolean sortKeys, String itemSep, String keySep) {
        try {
            return dev.tune4j.hf.PythonJson.dumps(v, indent, sortKeys, false, itemSep, keySep);
        } catch (IllegalArgumentException e) {
            throw new TemplateException("tojson: " + e.getMessage());
        }
    }

    static String json(Object v, Integer indent, boolean sortKeys) {
        return json(v, indent, sortKeys, null, null);
    }

    /** Refuses, before building it, a replace whose result would pass TemplateRenderer.MAX_OUTPUT characters. */
    static void checkReplace(String s, String old, String rep, long count) {
        if (rep.length() <= old.length()) return;
        long n = 0;
        if (old.isEmpty()) n = s.length() + 1;
        else for (int i = s.indexOf(old); i >= 0; i = s.indexOf(old, i + old.length())) n++;
        if (count >= 0) n = Math.min(n, count);
        if (s.length() + n * (rep.length() - old.length()) > TemplateRenderer.MAX_OUTPUT) throw tooLarge("replace");
    }

    static TemplateException tooLarge(String what) {
        return new TemplateException(what + ": output too large: more than " + TemplateRenderer.MAX_OUTPUT + " characters");
    }

    /** Python's str.strip(chars) family; chars null = whitespace. */
    static String strip(String s, String chars, boolean left, boolean right) {
        int a = 0, b = s.length();
        if (left) while (a < b && (chars == null ? Character.isWhitespace(s.charAt(a)) : chars.indexOf(s.charAt(a)) >= 0)) a++;
        if (right) while (b > a && (chars == null ? Character.isWhitespace(s.charAt(b - 1)) : chars.indexOf(s.charAt(b - 1)) >= 0)) b--;
        return s.substring(a, b);
    }

    static List<Object> split(String s, String sep, long maxSplit) {
        var out = new ArrayList<Object>();
        if (sep == null) {
            for (String p : s.strip().split("\\s+", maxSplit < 0 ? -1 : (int) maxSplit + 1)) if (!p.isEmpty()) out.add(p);
            return out;
        }
        if (sep.isEmpty()) throw new TemplateException("split: empty separator");
        int from = 0, n = 0;
        while (maxSplit < 0 || n < maxSplit) {
            int at = s.indexOf(sep, from);
            if (at < 0) break;
            out.add(s.substring(from, at));
            from = at + sep.length();
            n++;
        }
        out.add(s.substring(from));
        return out;
    }

    /** Iterating a value the way a Jinja for-loop does: lists, dict keys, string characters. */
    static List<Object> iterate(Object v) {
        v = norm(v);
        if (v == null || v instanceof Undefined) return List.of();
        if (v instanceof List<?> l) return new ArrayList<>(l);
        if (v instanceof Map<?, ?> m) return new ArrayList<>(m.keySet());
        if (v instanceof String s) {
            var out = new ArrayList<Object>();
            s.codePoints().forEach(c -> out.add(new String(Character.toChars(c))));
            return out;
        }
        throw new TemplateException("'" + typeName(v) + "' object is not iterable");
    }
}
