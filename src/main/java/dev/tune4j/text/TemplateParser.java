package dev.tune4j.text;

import java.util.*;

/**
 * Jinja2 source → syntax tree, with the environment transformers uses for chat templates: {@code trim_blocks} (drop the
 * first newline after a block tag), {@code lstrip_blocks} (drop spaces before a block tag at the start of a line) and the
 * {@code -}/{@code +} whitespace controls. Expression precedence follows Jinja2's parser: conditional → or → and → not →
 * comparison → + - → ~ → * / // % → ** → unary → primary with postfix, filters and tests.
 */
final class TemplateParser {
    // ---- syntax tree ----
    sealed interface Node permits Text, Output, If, For, SetVar, SetBlock, Macro, Break, Continue, CallBlockless {}
    record Text(String text) implements Node {}
    record Output(Expr expr, int line) implements Node {}
    record If(List<Expr> conds, List<List<Node>> bodies, List<Node> orElse) implements Node {}
    record For(List<String> targets, Expr iter, Expr filter, List<Node> body, List<Node> orElse, int line) implements Node {}
    record SetVar(List<String> targets, String attr, Expr value, int line) implements Node {}
    record SetBlock(String name, List<Node> body) implements Node {}
    record Macro(String name, List<String> params, List<Expr> defaults, List<Node> body) implements Node {}
    record Break() implements Node {}
    record Continue() implements Node {}
    /** {% generation %}…{% endgeneration %} (transformers' assistant-mask tag) and other pass-through blocks. */
    record CallBlockless(List<Node> body) implements Node {}

    sealed interface Expr permits Lit, Name, Attr, Item, Slice, Call, Filter, Test, Unary, Binary, Cond, ListLit, DictLit {}
    record Lit(Object value) implements Expr {}
    record Name(String name) implements Expr {}
    record Attr(Expr obj, String name) implements Expr {}
    record Item(Expr obj, Expr key) implements Expr {}
    record Slice(Expr obj, Expr start, Expr stop, Expr step) implements Expr {}
    record Call(Expr fn, List<Expr> args, Map<String, Expr> kwargs) implements Expr {}
    record Filter(Expr value, String name, List<Expr> args, Map<String, Expr> kwargs) implements Expr {}
    record Test(Expr value, String name, List<Expr> args, boolean negated) implements Expr {}
    record Unary(String op, Expr value) implements Expr {}
    record Binary(String op, Expr left, Expr right) implements Expr {}
    record Cond(Expr cond, Expr then, Expr orElse) implements Expr {}
    record ListLit(List<Expr> items) implements Expr {}
    record DictLit(List<Expr> keys, List<Expr> values) implements Expr {}

    private final String src, name;

    TemplateParser(String src, String name) {
        this.src = src;
        this.name = name;
    }

    // ---- lexing of the template into text and tags ----
    private record Tag(char kind, String body, boolean stripBefore, boolean stripAfter, boolean plusBefore, boolean plusAfter, int line) {}

    private final List<Object> pieces = new ArrayList<>(); // String (text) or Tag

    private void lex() {
        int i = 0, line = 1;
        while (i < src.length()) {
            int open = nextOpen(i);
            if (open < 0) {
                pieces.add(src.substring(i));
                break;
            }
            if (open > i) pieces.add(src.substring(i, open));
            line += count(src, i, open);
            char kind = src.charAt(open + 1);
            String close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
            int bodyStart = open + 2;
            int end = findClose(bodyStart, close);
            if (end < 0) throw error(line, "unclosed '" + src.substring(open, open + 2) + "'");
            String body = src.substring(bodyStart, end);
            boolean sb = body.startsWith("-"), pb = body.startsWith("+");
            if (sb || pb) body = body.substring(1);
            boolean sa = body.endsWith("-"), pa = body.endsWith("+");
            if (sa || pa) body = body.substring(0, body.length() - 1);
            if (kind == '%' && body.trim().equals("raw")) { // {% raw %}…{% endraw %}: literal text
                int endRaw = src.indexOf("endraw", end);
                int rawClose = endRaw < 0 ? -1 : src.lastIndexOf("{%", endRaw);
                if (rawClose < 0) throw error(line, "unclosed raw block");
                pieces.add(new Tag('%', "__raw_start", sb, sa, pb, pa, line));
                pieces.add(src.substring(end + 2, rawClose));
                int after = src.indexOf("%}", endRaw) + 2;
                String rb = src.substring(rawClose + 2, after - 2);
                pieces.add(new Tag('%', "__raw_end", rb.startsWith("-"), rb.endsWith("-"), false, false, line));
                line += count(src, open, after);
                i = after;
                continue;
            }
            pieces.add(new Tag(kind, body, sb, sa, pb, pa, line));
            line += count(src, open, end + 2);
            i = end + 2;
        }
        applyWhitespaceControl();
    }

    private int nextOpen(int from) {
        int i = from;
        while (true) {
            i = src.indexOf('{', i);
            if (i < 0 || i + 1 >= src.length()) return -1;
            char c = src.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') return i;
            i++;
        }
    }

    /** The closing delimiter, skipping over string literals inside the tag. */
    private int findClose(int from, String close) {
        char quote = 0;
        for (int i = from; i < src.length() - 1; i++) {
            char c = src.charAt(i);
            if (quote != 0) {
                if (c == '\\') i++;
                else if (c == quote) quote = 0;
            } else if (close.equals("#}")) {
                if (src.startsWith(close, i)) return i;
            } else if (c == '\'' || c == '"') quote = c;
            else if (src.startsWith(close, i)) return i;
        }
        return -1;
    }

    private static int count(String s, int from, int to) {
        int n = 0;
        for (int i = from; i < to; i++) if (s.charAt(i) == '\n') n++;
        return n;
    }

    private void applyWhitespaceControl() {
        for (int i = 0; i < pieces.size(); i++) {
            if (!(pieces.get(i) instanceof String text)) continue;
            Tag prev = i > 0 && pieces.get(i - 1) instanceof Tag t ? t : null;
            Tag next = i + 1 < pieces.size() && pieces.get(i + 1) instanceof Tag t ? t : null;
            if (prev != null && prev.body().equals("__raw_start")) continue;
            if (next != null) {
                if (next.stripBefore()) text = text.stripTrailing();
                else if (next.kind() != '{' && !next.plusBefore()) { // lstrip_blocks
                    int nl = text.lastIndexOf('\n');
                    String tail = text.substring(nl + 1);
                    if (tail.chars().allMatch(c -> c == ' ' || c == '\t') && (nl >= 0 || i == 0))
                        text = text.substring(0, nl + 1);
                }
            }
            if (prev != null) {
                if (prev.stripAfter()) text = text.stripLeading();
                else if (prev.kind() != '{' && !prev.plusAfter()) { // trim_blocks
                    if (text.startsWith("\r\n")) text = text.substring(2);
                    else if (text.startsWith("\n")) text = text.substring(1);
                }
            }
            pieces.set(i, text);
        }
    }

    // ---- statements ----
    private int pos;

    List<Node> parse() {
        lex();
        pos = 0;
        List<Node> body = parseBody(Set.of());
        if (pos < pieces.size()) {
            Tag t = (Tag) pieces.get(pos);
            throw error(t.line(), "unexpected '" + t.body().trim() + "'");
        }
        return body;
    }

    private List<Node> parseBody(Set<String> terminators) {
        var out = new ArrayList<Node>();
        while (pos < pieces.size()) {
            Object p = pieces.get(pos);
            if (p instanceof String s) {
                if (!s.isEmpty()) out.add(new Text(s));
                pos++;
                continue;
            }
            Tag t = (Tag) p;
            if (t.kind() == '#') {
                pos++;
                continue;
            }
            if (t.kind() == '{') {
                out.add(new Output(new ExprParser(t.body(), t.line()).parseAll(), t.line()));
                pos++;
                continue;
            }
            String body = t.body().trim();
            if (body.equals("__raw_start")) {
                pos++;
                if (pos < pieces.size() && pieces.get(pos) instanceof String s) {
                    out.add(new Text(s));
                    pos++;
                }
                pos++; // __raw_end
                continue;
            }
            String keyword = body.split("\\s+", 2)[0];
            if (terminators.contains(keyword)) return out;
            pos++;
            String rest = body.substring(keyword.length()).trim();
            out.add(switch (keyword) {
                case "if" -> parseIf(rest, t.line());
                case "for" -> parseFor(rest, t.line());
                case "set" -> parseSet(rest, t.line());
                case "macro" -> parseMacro(rest, t.line());
                case "break" -> new Break();
                case "continue" -> new Continue();
                case "generation", "filter" -> {
                    var inner = parseBody(Set.of("end" + keyword));
                    expectEnd("end" + keyword, t.line());
                    yield new CallBlockless(inner);
                }
                default -> throw error(t.line(), "unknown tag '" + keyword + "'");
            });
        }
        if (!terminators.isEmpty()) throw error(-1, "missing " + String.join(" or ", terminators));
        return out;
    }

    private String currentKeyword() {
        Tag t = (Tag) pieces.get(pos);
        return t.body().trim().split("\\s+", 2)[0];
    }

    private void expectEnd(String end, int line) {
        if (pos >= pieces.size() || !currentKeyword().equals(end)) throw error(line, "missing " + end);
        pos++;
    }

    private Node parseIf(String cond, int line) {
        var conds = new ArrayList<Expr>();
        var bodies = new ArrayList<List<Node>>();
        conds.add(new ExprParser(cond, line).parseAll());
        bodies.add(parseBody(Set.of("elif", "else", "endif")));
        List<Node> orElse = List.of();
        while (true) {
            if (pos >= pieces.size()) throw error(line, "missing endif");
            Tag t = (Tag) pieces.get(pos);
            String kw = currentKeyword();
            pos++;
            if (kw.equals("elif")) {
                conds.add(new ExprParser(t.body().trim().substring(4), t.line()).parseAll());
                bodies.add(parseBody(Set.of("elif", "else", "endif")));
            } else if (kw.equals("else")) {
                orElse = parseBody(Set.of("endif"));
                expectEnd("endif", line);
                break;
            } else break; // endif
        }
        return new If(conds, bodies, orElse);
    }

    private Node parseFor(String spec, int line) {
        var p = new ExprParser(spec, line);
        var targets = new ArrayList<String>();
        do targets.add(p.expectName()); while (p.accept(","));
        p.expectKeyword("in");
        Expr iter = p.parseOr(); // no bare conditional here: 'if' introduces the loop filter
        Expr filter = p.acceptKeyword("if") ? p.parseOr() : null;
        p.expectEnd();
        List<Node> body = parseBody(Set.of("else", "endfor"));
        List<Node> orElse = List.of();
        if (pos < pieces.size() && currentKeyword().equals("else")) {
            pos++;
            orElse = parseBody(Set.of("endfor"));
        }
        expectEnd("endfor", line);
        return new For(targets, iter, filter, body, orElse, line);
    }

    private Node parseSet(String spec, int line) {
        var p = new ExprParser(spec, line);
        var targets = new ArrayList<String>();
        String attr = null;
        targets.add(p.expectName());
        if (p.accept(".")) attr = p.expectName();
        else while (p.accept(",")) targets.add(p.expectName());
        if (!p.accept("=")) { // block set
            p.expectEnd();
            var body = parseBody(Set.of("endset"));
            expectEnd("endset", line);
            return new SetBlock(targets.getFirst(), body);
        }
        Expr value = p.parseTuple();
        p.expectEnd();
        return new SetVar(targets, attr, value, line);
    }

    private Node parseMacro(String spec, int line) {
        var p = new ExprParser(spec, line);
        String name = p.expectName();
        var params = new ArrayList<String>();
        var defaults = new ArrayList<Expr>();
        p.expect("(");
        if (!p.accept(")")) {
            do {
                params.add(p.expectName());
                defaults.add(p.accept("=") ? p.parseExpr() : null);
            } while (p.accept(","));
            p.expect(")");
        }
        p.expectEnd();
        var body = parseBody(Set.of("endmacro"));
        expectEnd("endmacro", line);
        return new Macro(name, params, defaults, body);
    }

    TemplateException error(int line, String what) {
        return new TemplateException(name + (line > 0 ? " line " + line : "") + ": " + what);
    }

    // ---- expressions ----
    private final class ExprParser {
        private final List<String> toks = new ArrayList<>();
        private final List<Character> kinds = new ArrayList<>(); // 'n' name, 's' string, 'i' int, 'f' float, 'o' operator
        private int i;
        private final int line;

        ExprParser(String s, int line) {
            this.line = line;
            tokenize(s);
        }

        private void tokenize(String s) {
            int k = 0;
            while (k < s.length()) {
                char c = s.charAt(k);
                if (Character.isWhitespace(c)) {
                    k++;
                } else if (Character.isLetter(c) || c == '_') {
                    int j = k;
                    while (j < s.length() && (Character.isLetterOrDigit(s.charAt(j)) || s.charAt(j) == '_')) j++;
                    add(s.substring(k, j), 'n');
                    k = j;
                } else if (Character.isDigit(c)) {
                    int j = k;
                    while (j < s.length() && (Character.isDigit(s.charAt(j)) || s.charAt(j) == '_')) j++;
                    boolean isFloat = false;
                    if (j + 1 < s.length() && s.charAt(j) == '.' && Character.isDigit(s.charAt(j + 1))) {
                        isFloat = true;
                        j++;
                        while (j < s.length() && Character.isDigit(s.charAt(j))) j++;
                    }
                    add(s.substring(k, j).replace("_", ""), isFloat ? 'f' : 'i');
                    k = j;
                } else if (c == '\'' || c == '"') {
                    var sb = new StringBuilder();
                    int j = k + 1;
                    while (j < s.length() && s.charAt(j) != c) {
                        char d = s.charAt(j);
                        if (d == '\\' && j + 1 < s.length()) {
                            char e = s.charAt(++j);
                            switch (e) {
                                case 'n' -> sb.append('\n');
                                case 't' -> sb.append('\t');
                                case 'r' -> sb.append('\r');
                                case '\\', '\'', '"' -> sb.append(e);
                                case 'u' -> {
                                    sb.append((char) Integer.parseInt(s.substring(j + 1, j + 5), 16));
                                    j += 4;
                                }
                                default -> sb.append('\\').append(e);
                            }
                        } else sb.append(d);
                        j++;
                    }
                    if (j >= s.length()) throw error(line, "unterminated string in '" + s + "'");
                    add(sb.toString(), 's');
                    k = j + 1;
                } else {
                    String two = k + 1 < s.length() ? s.substring(k, k + 2) : "";
                    if (List.of("==", "!=", "<=", ">=", "//", "**").contains(two)) {
                        add(two, 'o');
                        k += 2;
                    } else {
                        add(String.valueOf(c), 'o');
                        k++;
                    }
                }
            }
        }

        private void add(String t, char kind) {
            toks.add(t);
            kinds.add(kind);
        }

        private boolean atOp(String op) {
            return i < toks.size() && kinds.get(i) == 'o' && toks.get(i).equals(op);
        }

        private boolean atKeyword(String kw) {
            return i < toks.size() && kinds.get(i) == 'n' && toks.get(i).equals(kw);
        }

        boolean accept(String op) {
            if (atOp(op)) {
                i++;
                return true;
            }
            return false;
        }

        boolean acceptKeyword(String kw) {
            if (atKeyword(kw)) {
                i++;
                return true;
            }
            return false;
        }

        void expect(String op) {
            if (!accept(op)) throw error(line, "expected '" + op + "', found " + (i < toks.size() ? "'" + toks.get(i) + "'" : "end of tag"));
        }

        void expectKeyword(String kw) {
            if (!acceptKeyword(kw)) throw error(line, "expected '" + kw + "'");
        }

        String expectName() {
            if (i >= toks.size() || kinds.get(i) != 'n') throw error(line, "expected a name, found " + (i < toks.size() ? "'" + toks.get(i) + "'" : "end of tag"));
            return toks.get(i++);
        }

        void expectEnd() {
            if (i < toks.size()) throw error(line, "unexpected '" + toks.get(i) + "'");
        }

        Expr parseAll() {
            Expr e = parseTuple();
            expectEnd();
            return e;
        }

        /** a, b → a tuple (a list here); a single expression otherwise. */
        Expr parseTuple() {
            Expr first = parseExpr();
            if (!atOp(",")) return first;
            var items = new ArrayList<Expr>(List.of(first));
            while (accept(",")) {
                if (i >= toks.size()) break;
                items.add(parseExpr());
            }
            return new ListLit(items);
        }

        Expr parseExpr() {
            Expr e = parseOr();
            while (atKeyword("if")) {
                i++;
                Expr cond = parseOr();
                Expr orElse = acceptKeyword("else") ? parseExpr() : new Lit(Py.UNDEFINED);
                e = new Cond(cond, e, orElse);
            }
            return e;
        }

        Expr parseOr() {
            Expr e = parseAnd();
            while (acceptKeyword("or")) e = new Binary("or", e, parseAnd());
            return e;
        }

        Expr parseAnd() {
            Expr e = parseNot();
            while (acceptKeyword("and")) e = new Binary("and", e, parseNot());
            return e;
        }

        Expr parseNot() {
            if (acceptKeyword("not")) return new Unary("not", parseNot());
            return parseCompare();
        }

        Expr parseCompare() {
            Expr e = parseMath1();
            while (true) {
                String op = null;
                for (String o : List.of("==", "!=", "<=", ">=", "<", ">")) if (atOp(o)) op = o;
                if (op != null) {
                    i++;
                    e = new Binary(op, e, parseMath1());
                } else if (atKeyword("in")) {
                    i++;
                    e = new Binary("in", e, parseMath1());
                } else if (atKeyword("not") && i + 1 < toks.size() && toks.get(i + 1).equals("in")) {
                    i += 2;
                    e = new Binary("not in", e, parseMath1());
                } else return e;
            }
        }

        Expr parseMath1() {
            Expr e = parseConcat();
            while (atOp("+") || atOp("-")) {
                String op = toks.get(i++);
                e = new Binary(op, e, parseConcat());
            }
            return e;
        }

        Expr parseConcat() {
            Expr e = parseMath2();
            while (accept("~")) e = new Binary("~", e, parseMath2());
            return e;
        }

        Expr parseMath2() {
            Expr e = parsePow();
            while (atOp("*") || atOp("/") || atOp("//") || atOp("%")) {
                String op = toks.get(i++);
                e = new Binary(op, e, parsePow());
            }
            return e;
        }

        Expr parsePow() {
            Expr e = parseUnary(true);
            while (accept("**")) e = new Binary("**", e, parseUnary(true));
            return e;
        }

        Expr parseUnary(boolean withFilter) {
            Expr e;
            if (accept("-")) e = new Unary("-", parseUnary(false));
            else if (accept("+")) e = parseUnary(false);
            else e = parsePrimary();
            e = parsePostfix(e);
            return withFilter ? parseFilterExpr(e) : e;
        }

        Expr parsePrimary() {
            if (i >= toks.size()) throw error(line, "expression ends too early");
            String t = toks.get(i);
            char k = kinds.get(i++);
            switch (k) {
                case 's' -> {
                    var sb = new StringBuilder(t); // adjacent literals concatenate, as in Python
                    while (i < toks.size() && kinds.get(i) == 's') sb.append(toks.get(i++));
                    return new Lit(sb.toString());
                }
                case 'i' -> {
                    return new Lit(Long.parseLong(t));
                }
                case 'f' -> {
                    return new Lit(Double.parseDouble(t));
                }
                case 'n' -> {
                    return switch (t) {
                        case "true", "True" -> new Lit(Boolean.TRUE);
                        case "false", "False" -> new Lit(Boolean.FALSE);
                        case "none", "None" -> new Lit(null);
                        default -> new Name(t);
                    };
                }
                default -> {
                    if (t.equals("(")) {
                        if (accept(")")) return new ListLit(List.of());
                        Expr e = parseExpr();
                        if (atOp(",")) {
                            var items = new ArrayList<Expr>(List.of(e));
                            while (accept(",") && !atOp(")")) items.add(parseExpr());
                            e = new ListLit(items);
                        }
                        expect(")");
                        return e;
                    }
                    if (t.equals("[")) {
                        var items = new ArrayList<Expr>();
                        while (!accept("]")) {
                            items.add(parseExpr());
                            if (!atOp("]")) expect(",");
                        }
                        return new ListLit(items);
                    }
                    if (t.equals("{")) {
                        var keys = new ArrayList<Expr>();
                        var values = new ArrayList<Expr>();
                        while (!accept("}")) {
                            keys.add(parseExpr());
                            expect(":");
                            values.add(parseExpr());
                            if (!atOp("}")) expect(",");
                        }
                        return new DictLit(keys, values);
                    }
                    throw error(line, "unexpected '" + t + "'");
                }
            }
        }

        Expr parsePostfix(Expr e) {
            while (true) {
                if (accept(".")) {
                    if (i < toks.size() && kinds.get(i) == 'i') e = new Item(e, new Lit(Long.parseLong(toks.get(i++))));
                    else e = new Attr(e, expectName());
                } else if (accept("[")) {
                    Expr start = null, stop = null, step = null;
                    boolean slice = false;
                    if (!atOp(":")) start = parseExpr();
                    if (accept(":")) {
                        slice = true;
                        if (!atOp(":") && !atOp("]")) stop = parseExpr();
                        if (accept(":") && !atOp("]")) step = parseExpr();
                    }
                    expect("]");
                    e = slice ? new Slice(e, start, stop, step) : new Item(e, start);
                } else if (atOp("(")) {
                    e = parseCall(e);
                } else return e;
            }
        }

        Call parseCall(Expr fn) {
            expect("(");
            var args = new ArrayList<Expr>();
            var kwargs = new LinkedHashMap<String, Expr>();
            while (!accept(")")) {
                if (i + 1 < toks.size() && kinds.get(i) == 'n' && toks.get(i + 1).equals("=") && kinds.get(i + 1) == 'o') {
                    String k = toks.get(i);
                    i += 2;
                    kwargs.put(k, parseExpr());
                } else args.add(parseExpr());
                if (!atOp(")")) expect(",");
            }
            return new Call(fn, args, kwargs);
        }

        Expr parseFilterExpr(Expr e) {
            while (true) {
                if (accept("|")) {
                    String f = expectName();
                    while (accept(".")) f += "." + expectName();
                    if (atOp("(")) {
                        Call c = parseCall(new Name(f));
                        e = new Filter(e, f, c.args(), c.kwargs());
                    } else e = new Filter(e, f, List.of(), Map.of());
                } else if (atKeyword("is")) {
                    i++;
                    boolean neg = acceptKeyword("not");
                    String test = expectName();
                    var args = new ArrayList<Expr>();
                    if (atOp("(")) args.addAll(parseCall(new Name(test)).args());
                    else if (i < toks.size() && (kinds.get(i) == 's' || kinds.get(i) == 'i' || kinds.get(i) == 'f'
                            || (kinds.get(i) == 'n' && !Set.of("and", "or", "else", "if", "is", "in", "not").contains(toks.get(i)))))
                        args.add(parseUnary(false));
                    e = new Test(e, test, args, neg);
                } else return e;
            }
        }
    }
}
