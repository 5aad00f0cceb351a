package dev.tune4j.text;

import org.junit.jupiter.api.Test;

import java.util.*;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * What transformers' ImmutableSandboxedEnvironment (jinja2 3.1, default Undefined) does with hostile or broken
 * templates: undefined values print empty but raise when used, range and recursion and output are bounded, and every
 * refusal is a named TemplateException rather than a StackOverflowError or OutOfMemoryError.
 */
class TemplateSandboxTest {
    static String render(String src, Map<String, Object> vars) {
        return ChatTemplate.parse(src, "t").render(vars);
    }

    static String render(String src) {
        return render(src, Map.of("d", Map.of("a", 1L), "l", List.of(1L, 2L)));
    }

    @Test
    void plainUndefinedPrintsEmptyAndIsFalsyAndIterableAsEmpty() {
        assertThat(render("[{{ x }}]")).isEqualTo("[]");
        assertThat(render("{{ x is defined }} {{ x is undefined }} {{ x | default('dflt') }}")).isEqualTo("False True dflt");
        assertThat(render("{% if x %}yes{% else %}no{% endif %}")).isEqualTo("no");
        assertThat(render("{% for i in x %}{{ i }}{% else %}empty{% endfor %}")).isEqualTo("empty");
        assertThat(render("{{ 'a' in x }} {{ x == y }} {{ x == 1 }} {{ x ~ 'z' }} {{ x | length }}")).isEqualTo("False True False z 0");
        assertThat(render("[{{ d.missing }}][{{ d['missing'] }}][{{ l[5] }}]{{ d.missing is defined }}")).isEqualTo("[][][]False");
    }

    @Test
    void usingAnUndefinedValueRaisesUndefinedErrorWithJinjasHint() {
        assertThatThrownBy(() -> render("{{ foo.bar }}")).isInstanceOf(TemplateException.class).hasMessageContaining("UndefinedError: 'foo' is undefined");
        assertThatThrownBy(() -> render("{{ foo['bar'] }}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{% if foo.bar is defined %}{% endif %}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{{ foo() }}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{{ foo + 1 }}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{{ foo > 1 }}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{{ -foo }}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{{ foo[1:] }}")).hasMessageContaining("'foo' is undefined");
        assertThatThrownBy(() -> render("{{ d.missing.x }}")).hasMessageContaining("UndefinedError: 'dict object' has no attribute 'missing'");
        assertThatThrownBy(() -> render("{{ d['missing']['x'] }}")).hasMessageContaining("'dict object' has no attribute 'missing'");
        assertThatThrownBy(() -> render("{{ l[5].x }}")).hasMessageContaining("list object has no element 5");
        assertThatThrownBy(() -> render("{{ 'abc'.nope() }}")).hasMessageContaining("'str object' has no attribute 'nope'");
        assertThatThrownBy(() -> render("{% for m in l %}{{ loop.previtem.x }}{% endfor %}")).hasMessageContaining("there is no previous item");
        assertThatThrownBy(() -> render("{% macro f(a) %}{{ a.x }}{% endmacro %}{{ f() }}")).hasMessageContaining("parameter 'a' was not provided");
        assertThatThrownBy(() -> render("{{ n.strip() }}", Collections.singletonMap("n", null))).hasMessageContaining("'None' has no attribute 'strip'");
        assertThatThrownBy(() -> render("{{ x | tojson }}")).hasMessageContaining("Object of type Undefined is not JSON serializable");
        assertThatThrownBy(() -> render("{{ (l | select('gt', 5) | list | first).x }}")).hasMessageContaining("No first item, sequence was empty.");
    }

    @Test
    void rangeIsBoundedByTheSandboxMaxRange() {
        assertThat(TemplateRenderer.MAX_RANGE).isEqualTo(100_000);
        assertThat(render("{{ range(100000) | length }} {{ range(0, 200000, 2) | length }} {{ range(5, 0, -2) | list }}")).isEqualTo("100000 100000 [5, 3, 1]");
        assertThatThrownBy(() -> render("{{ range(100001) | length }}")).isInstanceOf(TemplateException.class)
                .hasMessageContaining("t: OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        assertThatThrownBy(() -> render("{% for i in range(0, 9999999999999, 1) %}{% endfor %}")).hasMessageContaining("Range too big");
        assertThatThrownBy(() -> render("{{ range(10, -200000, -2) | length }}")).hasMessageContaining("Range too big");
        assertThatThrownBy(() -> render("{{ range(1, 5, 0) }}")).hasMessageContaining("range() arg 3 must not be zero");
    }

    @Test
    void recursionIsBoundedWithANamedError() {
        String countdown = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}done{% endif %}{% endmacro %}";
        assertThat(render(countdown + "{{ f(50) }}")).isEqualTo("done");
        assertThatThrownBy(() -> render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")).isInstanceOf(TemplateException.class)
                .hasMessageContaining("RecursionError: macro 'f' called more than " + TemplateRenderer.MAX_DEPTH + " calls deep");
        String deep = "{{ " + "(".repeat(200_000) + "1" + ")".repeat(200_000) + " }}";
        assertThatThrownBy(() -> render(deep)).isInstanceOf(TemplateException.class).hasMessageContaining("RecursionError");
    }

    @Test
    void outputIsBoundedWithANamedError() {
        String limit = "more than " + TemplateRenderer.MAX_OUTPUT + " characters";
        assertThatThrownBy(() -> render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}")).isInstanceOf(TemplateException.class)
                .hasMessageContaining("t: output too large").hasMessageContaining(limit);
        assertThatThrownBy(() -> render("{{ 'ab' * 999999999999 }}")).hasMessageContaining("output too large");
        assertThatThrownBy(() -> render("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"))
                .hasMessageContaining("output too large");
        assertThatThrownBy(() -> render("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"))
                .hasMessageContaining("output too large");
        assertThatThrownBy(() -> render("{% set s = 'x' * 1000000 %}{{ s | replace('x', 'yyyyy') | length }}")).hasMessageContaining("replace: output too large");
        assertThatThrownBy(() -> render("{% set s = 'x' * 1000000 %}{{ s.replace('x', 'yyyyy', 900000) | length }}")).hasMessageContaining("replace: output too large");
        assertThatThrownBy(() -> render("{% set s = 'x' * 1000000 %}{{ [s, s, s, s, s] | join(',') | length }}")).hasMessageContaining("join: output too large");
        assertThat(render("{{ ['a', '', 'b'] | join(',') }} {{ 'aXbX'.replace('X', '--', 1) }} {{ 'aXbX' | replace('X', '--') }}")).isEqualTo("a,,b a--bX a--b--");
        assertThat(render("{{ ('x' * 1000000) | length }}")).isEqualTo("1000000");
    }
}
