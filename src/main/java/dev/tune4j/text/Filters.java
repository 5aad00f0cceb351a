package dev.tune4j.text;

import java.util.*;

/** Jinja2's built-in filters and tests that chat templates use, plus transformers' tojson. */
final class Filters {
    private Filters() {}

    static Object apply(TemplateRenderer r, String name, Object v, List<Object> a, Map<String, Object> k) {
        v = Py.norm(v);
        return switch (name) {
            case "length", "count" -> (long) (v instanceof String s ? s.codePointCount(0, s.length()) : v instanceof Map<?, ?> m ? m.size() : Py.iterate(v).size());
            case "tojson" -> {
                Object indent = k.getOrDefault("indent", a.isEmpty() ? null : a.getFirst());
                Object seps = k.get("separators");
                String item = null, key = null;
                if (seps instanceof List<?> l && l.size() == 2) {
                    item = Py.str(l.get(0));
                    key = Py.str(l.get(1));
                }
                yield Py.json(v, indent == null ? null : ((Number) Py.norm(indent)).intValue(), Py.truthy(k.get("sort_keys")), item, key);
            }
            case "trim" -> Py.strip(Py.str(v), a.isEmpty() ? null : Py.str(a.getFirst()), true, true);
            case "upper" -> Py.str(v).toUpperCase(Locale.ROOT);
            case "lower" -> Py.str(v).toLowerCase(Locale.ROOT);
            case "capitalize" -> {
                String s = Py.str(v);
                yield s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            }
            case "title" -> title(Py.str(v));
            case "string" -> Py.str(v);
            case "safe", "e", "escape" -> name.equals("safe") ? v : Py.str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&#34;").replace("'", "&#39;");
            case "int" -> v instanceof Number n ? (Object) n.longValue() : parseOr(Py.str(v), true, a);
            case "float" -> v instanceof Number n ? (Object) n.doubleValue() : parseOr(Py.str(v), false, a);
            case "abs" -> v instanceof Long l ? (Object) Math.abs(l) : Math.abs(((Number) v).doubleValue());
            case "round" -> {
                int digits = a.isEmpty() ? 0 : ((Number) Py.norm(a.getFirst())).intValue();
                double scale = Math.pow(10, digits);
                yield Math.round(((Number) v).doubleValue() * scale) / scale;
            }
            case "default", "d" -> {
                boolean ifFalsy = a.size() > 1 ? Py.truthy(a.get(1)) : Py.truthy(k.get("boolean"));
                Object dflt = a.isEmpty() ? "" : a.getFirst();
                yield Py.isUndefined(v) || (ifFalsy && !Py.truthy(v)) ? dflt : v;
            }
            case "first" -> {
                List<Object> l = Py.iterate(v);
                yield l.isEmpty() ? new Py.Undefined("No first item, sequence was empty.") : l.getFirst();
            }
            case "last" -> {
                List<Object> l = Py.iterate(v);
                yield l.isEmpty() ? new Py.Undefined("No last item, sequence was empty.") : l.getLast();
            }
            case "list" -> Py.iterate(v);
            case "reverse" -> {
                if (v instanceof String s) yield new StringBuilder(s).reverse().toString();
                List<Object> l = Py.iterate(v);
                Collections.reverse(l);
                yield l;
            }
            case "join" -> {
                String sep = a.isEmpty() ? "" : Py.str(a.getFirst());
                Object attr = k.getOrDefault("attribute", a.size() > 1 ? a.get(1) : null);
                var sb = new StringBuilder();
                boolean first = true;
                for (Object o : Py.iterate(v)) {
                    if (!first) sb.append(sep);
                    first = false;
                    sb.append(Py.str(attr == null ? o : r.item(o, attr)));
                    if (sb.length() > TemplateRenderer.MAX_OUTPUT) throw Py.tooLarge("join");
                }
                yield sb.toString();
            }
            case "replace" -> {
                Py.checkReplace(Py.str(v), Py.str(a.get(0)), Py.str(a.get(1)), -1);
                yield Py.str(v).replace(Py.str(a.get(0)), Py.str(a.get(1)));
            }
            case "items", "dictsort" -> {
                var out = new ArrayList<Object>();
                if (v instanceof Map<?, ?> m) m.forEach((x, y) -> out.add(new ArrayList<>(Arrays.asList(x, y))));
                if (name.equals("dictsort")) out.sort((x, y) -> Py.compare(((List<?>) x).getFirst(), ((List<?>) y).getFirst()));
                yield out;
            }
            case "unique" -> {
                var out = new ArrayList<Object>();
                for (Object o : Py.iterate(v)) if (out.stream().noneMatch(x -> Py.equal(x, o))) out.add(o);
                yield out;
            }
            case "sort" -> {
                List<Object> l = Py.iterate(v);
                Object attr = k.get("attribute");
                l.sort((x, y) -> Py.compare(attr == null ? x : r.item(x, attr), attr == null ? y : r.item(y, attr)));
                if (Py.truthy(k.getOrDefault("reverse", a.isEmpty() ? false : a.getFirst()))) Collections.reverse(l);
                yield l;
            }
            case "sum" -> {
                double total = 0;
                boolean allLong = true;
                for (Object o : Py.iterate(v)) {
                    Object n = Py.norm(o);
                    allLong &= n instanceof Long;
                    total += ((Number) n).doubleValue();
                }
                yield allLong ? (Object) (long) total : total;
            }
            case "min", "max" -> {
                List<Object> l = Py.iterate(v);
                if (l.isEmpty()) yield new Py.Undefined("No aggregated item, sequence was empty.");
                Object best = l.getFirst();
                for (Object o : l) if (name.equals("min") ? Py.compare(o, best) < 0 : Py.compare(o, best) > 0) best = o;
                yield best;
            }
            case "map" -> {
                var out = new ArrayList<Object>();
                for (Object o : Py.iterate(v)) {
                    if (k.containsKey("attribute")) {
                        Object x = r.item(o, k.get("attribute"));
                        out.add(Py.isUndefined(x) && k.containsKey("default") ? k.get("default") : x);
                    } else out.add(apply(r, Py.str(a.getFirst()), o, a.subList(1, a.size()), Map.of()));
                }
                yield out;
            }
            case "select", "reject" -> {
                var out = new ArrayList<Object>();
                for (Object o : Py.iterate(v)) {
                    boolean ok = a.isEmpty() ? Py.truthy(o) : test(Py.str(a.getFirst()), o, a.subList(1, a.size()));
                    if (ok == name.equals("select")) out.add(o);
                }
                yield out;
            }
            case "selectattr", "rejectattr" -> {
                var out = new ArrayList<Object>();
                for (Object o : Py.iterate(v)) {
                    Object x = r.item(o, a.getFirst());
                    boolean ok = a.size() < 2 ? Py.truthy(x) : test(Py.str(a.get(1)), x, a.subList(2, a.size()));
                    if (ok == name.equals("selectattr")) out.add(o);
                }
                yield out;
            }
            case "indent" -> {
                int width = a.isEmpty() ? 4 : ((Number) Py.norm(a.getFirst())).intValue();
                boolean first = Py.truthy(k.getOrDefault("first", a.size() > 1 ? a.get(1) : false));
                String pad = " ".repeat(width);
                String[] lines = Py.str(v).split("\n", -1);
                var sb = new StringBuilder();
                for (int i = 0; i < lines.length; i++) {
                    if (i > 0) sb.append('\n');
                    if ((i > 0 || first) && !lines[i].isEmpty()) sb.append(pad);
                    sb.append(lines[i]);
                }
                yield sb.toString();
            }
            case "wordcount" -> (long) Py.split(Py.str(v), null, -1).size();
            default -> throw new TemplateException("unknown filter '" + name + "'");
        };
    }

    private static Object parseOr(String s, boolean integer, List<Object> a) {
        try {
            return integer ? (Object) Long.parseLong(s.strip()) : Double.parseDouble(s.strip());
        } catch (NumberFormatException e) {
            return a.isEmpty() ? (integer ? (Object) 0L : 0.0) : a.getFirst();
        }
    }

    static String title(String s) {
        var sb = new StringBuilder();
        boolean prevLetter = false;
        for (char c : s.toCharArray()) {
            sb.append(prevLetter ? Character.toLowerCase(c) : Character.toUpperCase(c));
            prevLetter = Character.isLetter(c);
        }
        return sb.toString();
    }

    static boolean test(String name, Object v, List<Object> a) {
        v = Py.norm(v);
        return switch (name) {
            case "defined" -> !Py.isUndefined(v);
            case "undefined" -> Py.isUndefined(v);
            case "none" -> v == null;
            case "boolean" -> v instanceof Boolean;
            case "true" -> Boolean.TRUE.equals(v);
            case "false" -> Boolean.FALSE.equals(v);
            case "string" -> v instanceof String;
            case "number" -> v instanceof Long || v instanceof Double;
            case "integer" -> v instanceof Long;
            case "float" -> v instanceof Double;
            case "mapping" -> v instanceof Map;
            case "sequence", "iterable" -> v instanceof List || v instanceof String || v instanceof Map;
            case "callable" -> v instanceof TemplateRenderer.Fn;
            case "odd" -> v instanceof Long l && l % 2 != 0;
            case "even" -> v instanceof Long l && l % 2 == 0;
            case "divisibleby" -> v instanceof Long l && l % (Long) Py.norm(a.getFirst()) == 0;
            case "eq", "equalto", "==" -> Py.equal(v, a.getFirst());
            case "ne", "!=" -> !Py.equal(v, a.getFirst());
            case "lt", "lessthan", "<" -> Py.compare(v, a.getFirst()) < 0;
            case "gt", "greaterthan", ">" -> Py.compare(v, a.getFirst()) > 0;
            case "le", "<=" -> Py.compare(v, a.getFirst()) <= 0;
            case "ge", ">=" -> Py.compare(v, a.getFirst()) >= 0;
            case "in" -> TemplateRenderer.contains(a.getFirst(), v);
            case "sameas" -> v == Py.norm(a.getFirst()) || (v != null && v.equals(Py.norm(a.getFirst())) && (v instanceof Boolean));
            case "lower" -> v instanceof String s && s.equals(s.toLowerCase(Locale.ROOT));
            case "upper" -> v instanceof String s && s.equals(s.toUpperCase(Locale.ROOT));
            default -> throw new TemplateException("unknown test '" + name + "'");
        };
    }
}
