package dev.tune4j.text;

import java.util.*;

/** The Python methods templates call on strings and dicts (message.content.strip(), d.items(), ...). */
final class Methods {
    private Methods() {}

    static TemplateRenderer.Fn of(Object obj, String name) {
        if (obj instanceof String s) return string(s, name);
        if (obj instanceof Map<?, ?> m) return dict(m, name);
        return null;
    }

    private static String arg(List<Object> a, int i) {
        return i < a.size() && a.get(i) != null ? Py.str(a.get(i)) : null;
    }

    private static TemplateRenderer.Fn string(String s, String name) {
        return switch (name) {
            case "strip" -> (a, k) -> Py.strip(s, arg(a, 0), true, true);
            case "lstrip" -> (a, k) -> Py.strip(s, arg(a, 0), true, false);
            case "rstrip" -> (a, k) -> Py.strip(s, arg(a, 0), false, true);
            case "split" -> (a, k) -> Py.split(s, arg(a, 0), a.size() > 1 ? (Long) Py.norm(a.get(1)) : -1);
            case "upper" -> (a, k) -> s.toUpperCase(Locale.ROOT);
            case "lower" -> (a, k) -> s.toLowerCase(Locale.ROOT);
            case "title" -> (a, k) -> Filters.title(s);
            case "capitalize" -> (a, k) -> s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "startswith" -> (a, k) -> affix(s, a.getFirst(), true);
            case "endswith" -> (a, k) -> affix(s, a.getFirst(), false);
            case "replace" -> (a, k) -> {
                long count = a.size() > 2 ? (Long) Py.norm(a.get(2)) : -1;
                Py.checkReplace(s, arg(a, 0), arg(a, 1), count);
                if (count < 0) return s.replace(arg(a, 0), arg(a, 1));
                String out = s;
                int from = 0;
                for (long n = 0; n < count; n++) {
                    int at = out.indexOf(arg(a, 0), from);
                    if (at < 0) break;
                    out = out.substring(0, at) + arg(a, 1) + out.substring(at + arg(a, 0).length());
                    from = at + arg(a, 1).length();
                }
                return out;
            };
            case "find" -> (a, k) -> (long) s.indexOf(arg(a, 0));
            case "rfind" -> (a, k) -> (long) s.lastIndexOf(arg(a, 0));
            case "count" -> (a, k) -> {
                String sub = arg(a, 0);
                long n = 0;
                for (int i = s.indexOf(sub); i >= 0 && !sub.isEmpty(); i = s.indexOf(sub, i + sub.length())) n++;
                return n;
            };
            case "join" -> (a, k) -> {
                var sj = new StringJoiner(s);
                for (Object o : Py.iterate(a.getFirst())) sj.add(Py.str(o));
                return sj.toString();
            };
            case "format" -> (a, k) -> format(s, a, k);
            case "isdigit" -> (a, k) -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            case "isalpha" -> (a, k) -> !s.isEmpty() && s.chars().allMatch(Character::isLetter);
            case "isspace" -> (a, k) -> !s.isEmpty() && s.chars().allMatch(Character::isWhitespace);
            case "islower" -> (a, k) -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toLowerCase(Locale.ROOT));
            case "isupper" -> (a, k) -> s.chars().anyMatch(Character::isLetter) && s.equals(s.toUpperCase(Locale.ROOT));
            case "removeprefix" -> (a, k) -> s.startsWith(arg(a, 0)) ? s.substring(arg(a, 0).length()) : s;
            case "removesuffix" -> (a, k) -> s.endsWith(arg(a, 0)) ? s.substring(0, s.length() - arg(a, 0).length()) : s;
            case "splitlines" -> (a, k) -> new ArrayList<Object>(Arrays.asList((Object[]) s.split("\\r?\\n|\\r")));
            default -> null;
        };
    }

    private static boolean affix(String s, Object what, boolean prefix) {
        if (what instanceof List<?> options) {
            for (Object o : options) if (prefix ? s.startsWith(Py.str(o)) : s.endsWith(Py.str(o))) return true;
            return false;
        }
        return prefix ? s.startsWith(Py.str(what)) : s.endsWith(Py.str(what));
    }

    private static TemplateRenderer.Fn dict(Map<?, ?> m, String name) {
        return switch (name) {
            case "items" -> (a, k) -> {
                var out = new ArrayList<Object>();
                m.forEach((x, y) -> out.add(new ArrayList<>(Arrays.asList(x, y))));
                return out;
            };
            case "keys" -> (a, k) -> new ArrayList<Object>(m.keySet());
            case "values" -> (a, k) -> new ArrayList<Object>(m.values());
            case "get" -> (a, k) -> {
                Object key = a.getFirst();
                return m.containsKey(key) ? m.get(key) : a.size() > 1 ? a.get(1) : null;
            };
            default -> null;
        };
    }

    /** str.format with {} / {0} / {name} fields (no format specs). */
    static String format(String s, List<Object> args, Map<String, Object> kwargs) {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '{' && i + 1 < s.length() && s.charAt(i + 1) == '{') {
                sb.append('{');
                i++;
            } else if (c == '}' && i + 1 < s.length() && s.charAt(i + 1) == '}') {
                sb.append('}');
                i++;
            } else if (c == '{') {
                int end = s.indexOf('}', i);
                String field = s.substring(i + 1, end);
                Object v = field.isEmpty() ? args.get(auto++) : field.chars().allMatch(Character::isDigit) ? args.get(Integer.parseInt(field)) : kwargs.get(field);
                sb.append(Py.str(v));
                i = end;
            } else sb.append(c);
        }
        return sb.toString();
    }

    /** "%s" % x (and %d, %r) as Python's printf-style formatting. */
    static String percentFormat(String s, Object args) {
        List<Object> values = args instanceof List<?> l ? new ArrayList<>(l) : List.of(args == null ? "None" : args);
        var sb = new StringBuilder();
        int next = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c != '%' || i + 1 >= s.length()) {
                sb.append(c);
                continue;
            }
            char d = s.charAt(++i);
            switch (d) {
                case '%' -> sb.append('%');
                case 'r' -> sb.append(Py.repr(values.get(next++)));
                case 'd' -> sb.append(((Number) Py.norm(values.get(next++))).longValue());
                default -> sb.append(Py.str(values.get(next++)));
            }
        }
        return sb.toString();
    }
}
