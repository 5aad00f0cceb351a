package dev.tune4j.text;

import dev.tune4j.text.TemplateParser.*;

import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.*;

/**
 * Evaluates a parsed template. Scoping is Jinja2's: a for-loop body gets its own scope per iteration (so {@code set}
 * inside a loop does not leak out, which is why templates use {@code namespace()}), {@code if} does not.
 */
final class TemplateRenderer {
    /** jinja2.sandbox.MAX_RANGE: range() refuses to make more items than this. */
    static final int MAX_RANGE = 100_000;
    /** Macro calls nested deeper than this stop the render (Python would raise RecursionError near 1000 frames). */
    static final int MAX_DEPTH = 200;
    /** Rendered text, and any string or list a template builds, is refused past this many characters (items). */
    static final int MAX_OUTPUT = 4 << 20;

    /** Anything callable from a template: globals, macros, bound methods, loop.cycle. */
    interface Fn {
        Object call(List<Object> args, Map<String, Object> kwargs);
    }

    /** namespace(...): the one object whose attributes {@code set} may assign. */
    static final class Namespace extends LinkedHashMap<String, Object> {}

    private static final class BreakSignal extends RuntimeException {
        BreakSignal() {
            super(null, null, false, false);
        }
    }

    private static final class ContinueSignal extends RuntimeException {
        ContinueSignal() {
            super(null, null, false, false);
        }
    }

    private final String name;
    private final Deque<Map<String, Object>> scopes = new ArrayDeque<>();
    private int depth;

    TemplateRenderer(String name, Map<String, Object> vars) {
        this.name = name;
        var globals = new HashMap<String, Object>();
        globals.put("raise_exception", (Fn) (a, k) -> {
            throw new TemplateException(name + ": raise_exception: " + (a.isEmpty() ? "" : Py.str(a.getFirst())));
        });
        globals.put("range", (Fn) (a, k) -> range(a));
        globals.put("namespace", (Fn) (a, k) -> {
            var ns = new Namespace();
            for (Object o : a) if (o instanceof Map<?, ?> m) m.forEach((x, y) -> ns.put(Py.str(x), y));
            ns.putAll(k);
            return ns;
        });
        globals.put("dict", (Fn) (a, k) -> {
            var m = new LinkedHashMap<String, Object>();
            for (Object o : a) if (o instanceof Map<?, ?> mm) mm.forEach((x, y) -> m.put(Py.str(x), y));
            m.putAll(k);
            return m;
        });
        globals.put("strftime_now", (Fn) (a, k) -> strftime(Py.str(a.getFirst()), ZonedDateTime.now()));
        scopes.push(globals);
        scopes.push(new HashMap<>(vars));
    }

    String render(List<Node> nodes) {
        var out = new StringBuilder();
        try {
            exec(nodes, out);
        } catch (StackOverflowError e) {
            throw new TemplateException(name + ": RecursionError: the template nests too deeply");
        }
        return out.toString();
    }

    /** A string or list past {@link #MAX_OUTPUT} stops the render. */
    private Object bounded(Object v) {
        int n = v instanceof CharSequence c ? c.length() : v instanceof List<?> l ? l.size() : 0;
        if (n > MAX_OUTPUT) throw tooLarge();
        return v;
    }

    private TemplateException tooLarge() {
        return new TemplateException(name + ": output too large: the template built more than " + MAX_OUTPUT + " characters (or list items); chat template output is bounded against runaway templates");
    }

    // ---- statements ----
    private void exec(List<Node> nodes, StringBuilder out) {
        for (Node n : nodes) exec(n, out);
    }

    private void exec(Node n, StringBuilder out) {
        switch (n) {
            case Text t -> bounded(out.append(t.text()));
            case Output o -> bounded(out.append(Py.str(eval(o.expr()))));
            case If f -> {
                for (int i = 0; i < f.conds().size(); i++) {
                    if (Py.truthy(eval(f.conds().get(i)))) {
                        exec(f.bodies().get(i), out);
                        return;
                    }
                }
                exec(f.orElse(), out);
            }
            case For f -> execFor(f, out);
            case SetVar s -> {
                Object v = eval(s.value());
                if (s.attr() != null) {
                    Object ns = lookup(s.targets().getFirst());
                    if (!(ns instanceof Namespace m)) throw new TemplateException(name + " line " + s.line() + ": can only set attributes of a namespace()");
                    m.put(s.attr(), v);
                } else if (s.targets().size() == 1) scopes.peek().put(s.targets().getFirst(), v);
                else {
                    List<Object> vs = Py.iterate(v);
                    if (vs.size() != s.targets().size()) throw new TemplateException(name + " line " + s.line() + ": cannot unpack " + vs.size() + " values into " + s.targets().size());
                    for (int i = 0; i < vs.size(); i++) scopes.peek().put(s.targets().get(i), vs.get(i));
                }
            }
            case SetBlock s -> {
                var sb = new StringBuilder();
                exec(s.body(), sb);
                scopes.peek().put(s.name(), sb.toString());
            }
            case Macro m -> scopes.peek().put(m.name(), macro(m));
            case Break b -> throw new BreakSignal();
            case Continue c -> throw new ContinueSignal();
            case CallBlockless c -> exec(c.body(), out);
        }
    }

    private void execFor(For f, StringBuilder out) {
        List<Object> items = new ArrayList<>();
        for (Object item : Py.iterate(eval(f.iter()))) {
            if (f.filter() != null) {
                scopes.push(new HashMap<>());
                bind(f, item);
                boolean keep = Py.truthy(eval(f.filter()));
                scopes.pop();
                if (!keep) continue;
            }
            items.add(item);
        }
        if (items.isEmpty()) {
            exec(f.orElse(), out);
            return;
        }
        int n = items.size();
        for (int i = 0; i < n; i++) {
            var loop = new LinkedHashMap<String, Object>();
            loop.put("index", (long) i + 1);
            loop.put("index0", (long) i);
            loop.put("revindex", (long) (n - i));
            loop.put("revindex0", (long) (n - i - 1));
            loop.put("first", i == 0);
            loop.put("last", i == n - 1);
            loop.put("length", (long) n);
            loop.put("previtem", i > 0 ? items.get(i - 1) : new Py.Undefined("there is no previous item"));
            loop.put("nextitem", i < n - 1 ? items.get(i + 1) : new Py.Undefined("there is no next item"));
            final int idx = i;
            loop.put("cycle", (Fn) (a, k) -> a.get(idx % a.size()));
            var scope = new HashMap<String, Object>();
            scope.put("loop", loop);
            scopes.push(scope);
            try {
                bind(f, items.get(i));
                exec(f.body(), out);
            } catch (ContinueSignal c) {
                // next item
            } catch (BreakSignal b) {
                break;
            } finally {
                scopes.pop();
            }
        }
    }

    private void bind(For f, Object item) {
        if (f.targets().size() == 1) {
            scopes.peek().put(f.targets().getFirst(), item);
            return;
        }
        List<Object> parts = Py.iterate(item);
        if (parts.size() != f.targets().size())
            throw new TemplateException(name + " line " + f.line() + ": cannot unpack " + parts.size() + " values into " + f.targets());
        for (int i = 0; i < parts.size(); i++) scopes.peek().put(f.targets().get(i), parts.get(i));
    }

    private Fn macro(Macro m) {
        return (args, kwargs) -> {
            var scope = new HashMap<String, Object>();
            for (int i = 0; i < m.params().size(); i++) {
                String p = m.params().get(i);
                if (i < args.size()) scope.put(p, args.get(i));
                else if (kwargs.containsKey(p)) scope.put(p, kwargs.get(p));
                else scope.put(p, m.defaults().get(i) == null ? new Py.Undefined("parameter '" + p + "' was not provided") : eval(m.defaults().get(i)));
            }
            if (depth >= MAX_DEPTH) throw new TemplateException(name + ": RecursionError: macro '" + m.name() + "' called more than " + MAX_DEPTH + " calls deep");
            depth++;
            scopes.push(scope);
            try {
                var sb = new StringBuilder();
                exec(m.body(), sb);
                return sb.toString();
            } finally {
                scopes.pop();
                depth--;
            }
        };
    }

    private Object lookup(String n) {
        for (Map<String, Object> s : scopes) if (s.containsKey(n)) return s.get(n);
        return new Py.Undefined("'" + n + "' is undefined");
    }

    // ---- expressions ----
    Object eval(Expr e) {
        return switch (e) {
            case Lit l -> l.value();
            case Name n -> lookup(n.name());
            case Attr a -> attribute(eval(a.obj()), a.name());
            case Item it -> item(eval(it.obj()), eval(it.key()));
            case Slice s -> slice(eval(s.obj()), s);
            case Call c -> bounded(call(c));
            case Filter f -> bounded(Filters.apply(this, f.name(), eval(f.value()), evalAll(f.args()), evalKw(f.kwargs())));
            case Test t -> Filters.test(t.name(), eval(t.value()), evalAll(t.args())) != t.negated();
            case Unary u -> switch (u.op()) {
                case "not" -> !Py.truthy(eval(u.value()));
                default -> negate(defined(eval(u.value())));
            };
            case Binary b -> bounded(binary(b));
            case Cond c -> Py.truthy(eval(c.cond())) ? eval(c.then()) : eval(c.orElse());
            case ListLit l -> new ArrayList<>(evalAll(l.items()));
            case DictLit d -> {
                var m = new LinkedHashMap<String, Object>();
                for (int i = 0; i < d.keys().size(); i++) m.put(Py.str(eval(d.keys().get(i))), eval(d.values().get(i)));
                yield m;
            }
        };
    }

    List<Object> evalAll(List<Expr> es) {
        var out = new ArrayList<Object>(es.size());
        for (Expr x : es) out.add(eval(x));
        return out;
    }

    private Map<String, Object> evalKw(Map<String, Expr> kw) {
        var out = new LinkedHashMap<String, Object>();
        kw.forEach((k, v) -> out.put(k, eval(v)));
        return out;
    }

    private Object call(Call c) {
        Object fn = defined(eval(c.fn()));
        if (!(fn instanceof Fn f)) throw new TemplateException(name + ": '" + describe(c.fn()) + "' is not callable (" + Py.typeName(fn) + ")");
        return f.call(evalAll(c.args()), evalKw(c.kwargs()));
    }

    private static String describe(Expr e) {
        return switch (e) {
            case Name n -> n.name();
            case Attr a -> describe(a.obj()) + "." + a.name();
            default -> "expression";
        };
    }

    /** The value itself, or the undefined value's UndefinedError (jinja2 raises on attribute, item, call, arithmetic). */
    private Object defined(Object v) {
        if (v instanceof Py.Undefined u) throw u.error(name);
        return v;
    }

    Object attribute(Object obj, String attr) {
        obj = Py.norm(defined(obj));
        if (obj instanceof Map<?, ?> m && m.containsKey(attr)) return m.get(attr);
        Fn method = Methods.of(obj, attr);
        return method != null ? method : new Py.Undefined("'" + Py.objectType(obj) + "' has no attribute '" + attr + "'");
    }

    Object item(Object obj, Object key) {
        obj = Py.norm(defined(obj));
        key = Py.norm(key);
        Object found = rawItem(obj, key);
        if (found != NO_ITEM) return found;
        if (key instanceof String k) return attribute(obj, k);
        return new Py.Undefined(Py.objectType(obj) + " has no element " + Py.repr(key));
    }

    private static final Object NO_ITEM = new Object();

    private static Object rawItem(Object obj, Object key) {
        if (obj instanceof Map<?, ?> m) {
            Object k = key instanceof String ? key : Py.str(key);
            return m.containsKey(k) ? m.get(k) : NO_ITEM;
        }
        if (obj instanceof List<?> l && key instanceof Long i) {
            long j = i < 0 ? l.size() + i : i;
            return j >= 0 && j < l.size() ? l.get((int) j) : NO_ITEM;
        }
        if (obj instanceof String s && key instanceof Long i) {
            long j = i < 0 ? s.length() + i : i;
            return j >= 0 && j < s.length() ? String.valueOf(s.charAt((int) j)) : NO_ITEM;
        }
        return NO_ITEM;
    }

    private Object slice(Object obj, Slice s) {
        obj = Py.norm(defined(obj));
        boolean isString = obj instanceof String;
        List<Object> seq = Py.iterate(obj);
        int n = seq.size();
        long step = s.step() == null ? 1 : (Long) Py.norm(eval(s.step()));
        if (step == 0) throw new TemplateException(name + ": slice step cannot be zero");
        Long start = s.start() == null ? null : (Long) Py.norm(eval(s.start()));
        Long stop = s.stop() == null ? null : (Long) Py.norm(eval(s.stop()));
        long a, b;
        if (step > 0) {
            a = start == null ? 0 : clamp(start < 0 ? start + n : start, 0, n);
            b = stop == null ? n : clamp(stop < 0 ? stop + n : stop, 0, n);
        } else {
            a = start == null ? n - 1 : clamp(start < 0 ? start + n : start, -1, n - 1);
            b = stop == null ? -1 : clamp(stop < 0 ? stop + n : stop, -1, n - 1);
        }
        var out = new ArrayList<Object>();
        for (long i = a; step > 0 ? i < b : i > b; i += step) out.add(seq.get((int) i));
        if (isString) {
            var sb = new StringBuilder();
            for (Object o : out) sb.append(o);
            return sb.toString();
        }
        return out;
    }

    private static long clamp(long v, long lo, long hi) {
        return Math.max(lo, Math.min(hi, v));
    }

    private Object negate(Object v) {
        v = Py.norm(v);
        if (v instanceof Long l) return -l;
        if (v instanceof Double d) return -d;
        throw new TemplateException(name + ": bad operand type for unary -: " + Py.typeName(v));
    }

    private Object binary(Binary b) {
        switch (b.op()) {
            case "and": {
                Object l = eval(b.left());
                return Py.truthy(l) ? eval(b.right()) : l;
            }
            case "or": {
                Object l = eval(b.left());
                return Py.truthy(l) ? l : eval(b.right());
            }
            default:
        }
        Object l = Py.norm(eval(b.left())), r = Py.norm(eval(b.right()));
        switch (b.op()) {
            case "==", "!=", "in", "not in", "~" -> {}
            default -> { // jinja2's Undefined raises on arithmetic and ordering
                defined(l);
                defined(r);
            }
        }
        return switch (b.op()) {
            case "==" -> Py.equal(l, r);
            case "!=" -> !Py.equal(l, r);
            case "<" -> Py.compare(l, r) < 0;
            case ">" -> Py.compare(l, r) > 0;
            case "<=" -> Py.compare(l, r) <= 0;
            case ">=" -> Py.compare(l, r) >= 0;
            case "in" -> contains(r, l);
            case "not in" -> !contains(r, l);
            case "~" -> Py.str(l) + Py.str(r);
            case "+" -> add(l, r);
            default -> arithmetic(b.op(), l, r);
        };
    }

    private Object add(Object l, Object r) {
        if (l instanceof String x && r instanceof String y) return x + y;
        if (l instanceof List<?> x && r instanceof List<?> y) {
            var out = new ArrayList<Object>(x);
            out.addAll(y);
            return out;
        }
        if (l instanceof Number || r instanceof Number) return arithmetic("+", l, r);
        throw new TemplateException(name + ": can only concatenate " + Py.typeName(l) + " (not \"" + Py.typeName(r) + "\") with +");
    }

    private Object arithmetic(String op, Object l, Object r) {
        if (l instanceof Boolean x) l = x ? 1L : 0L;
        if (r instanceof Boolean y) r = y ? 1L : 0L;
        if (op.equals("*") && l instanceof String s && r instanceof Long k) {
            long times = Math.max(0, k);
            if (!s.isEmpty() && times > MAX_OUTPUT / s.length()) throw tooLarge();
            return s.repeat((int) times);
        }
        if (op.equals("%") && l instanceof String s) return Methods.percentFormat(s, r);
        if (!(l instanceof Number x) || !(r instanceof Number y))
            throw new TemplateException(name + ": unsupported operand types for " + op + ": " + Py.typeName(l) + " and " + Py.typeName(r));
        boolean ints = l instanceof Long && r instanceof Long;
        return switch (op) {
            case "+" -> ints ? (Object) (x.longValue() + y.longValue()) : x.doubleValue() + y.doubleValue();
            case "-" -> ints ? (Object) (x.longValue() - y.longValue()) : x.doubleValue() - y.doubleValue();
            case "*" -> ints ? (Object) (x.longValue() * y.longValue()) : x.doubleValue() * y.doubleValue();
            case "/" -> x.doubleValue() / y.doubleValue();
            case "//" -> ints ? (Object) Math.floorDiv(x.longValue(), y.longValue()) : Math.floor(x.doubleValue() / y.doubleValue());
            case "%" -> ints ? (Object) Math.floorMod(x.longValue(), y.longValue()) : x.doubleValue() - Math.floor(x.doubleValue() / y.doubleValue()) * y.doubleValue();
            case "**" -> ints && y.longValue() >= 0 ? (Object) (long) Math.pow(x.longValue(), y.longValue()) : Math.pow(x.doubleValue(), y.doubleValue());
            default -> throw new TemplateException(name + ": unknown operator " + op);
        };
    }

    static boolean contains(Object container, Object item) {
        container = Py.norm(container);
        if (container instanceof String s) return item instanceof String x && s.contains(x);
        if (container instanceof Map<?, ?> m) return m.containsKey(item instanceof String ? item : Py.str(item));
        if (container instanceof List<?> l) {
            for (Object o : l) if (Py.equal(o, item)) return true;
            return false;
        }
        if (container instanceof Py.Undefined) return false; // jinja2's Undefined iterates as empty
        if (container == null) throw new TemplateException("argument of type '" + Py.typeName(container) + "' is not iterable");
        return false;
    }

    /** jinja2's sandboxed safe_range: more than MAX_RANGE items is refused before any is made. */
    private List<Object> range(List<Object> a) {
        long start = 0, stop, step = 1;
        if (a.isEmpty() || a.size() > 3) throw new TemplateException(name + ": range expected 1 to 3 arguments, got " + a.size());
        for (Object o : a) if (!(Py.norm(defined(o)) instanceof Long)) throw new TemplateException(name + ": range: '" + Py.typeName(o) + "' object cannot be interpreted as an integer");
        if (a.size() == 1) stop = (Long) Py.norm(a.get(0));
        else {
            start = (Long) Py.norm(a.get(0));
            stop = (Long) Py.norm(a.get(1));
            if (a.size() > 2) step = (Long) Py.norm(a.get(2));
        }
        if (step == 0) throw new TemplateException(name + ": ValueError: range() arg 3 must not be zero");
        double count = step > 0 ? Math.ceil(((double) stop - start) / step) : Math.ceil(((double) start - stop) / -step);
        if (count > MAX_RANGE) throw new TemplateException(name + ": OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + MAX_RANGE + ").");
        var out = new ArrayList<Object>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step) out.add(i);
        return out;
    }

    /** The strftime directives date-stamping templates use (Llama 3.x: "%d %b %Y"). */
    static String strftime(String fmt, ZonedDateTime t) {
        var sb = new StringBuilder();
        for (int i = 0; i < fmt.length(); i++) {
            char c = fmt.charAt(i);
            if (c != '%' || i + 1 >= fmt.length()) {
                sb.append(c);
                continue;
            }
            char d = fmt.charAt(++i);
            sb.append(switch (d) {
                case 'd' -> String.format("%02d", t.getDayOfMonth());
                case 'm' -> String.format("%02d", t.getMonthValue());
                case 'Y' -> String.valueOf(t.getYear());
                case 'y' -> String.format("%02d", t.getYear() % 100);
                case 'b' -> t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'B' -> t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                case 'a' -> t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH);
                case 'A' -> t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH);
                case 'H' -> String.format("%02d", t.getHour());
                case 'M' -> String.format("%02d", t.getMinute());
                case 'S' -> String.format("%02d", t.getSecond());
                case 'j' -> String.format("%03d", t.getDayOfYear());
                case '%' -> "%";
                default -> "%" + d;
            });
        }
        return sb.toString();
    }
}
