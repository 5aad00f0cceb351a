package dev.tune4j.text;

import org.junit.jupiter.api.Test;

import java.util.*;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The Jinja2 semantics chat templates rely on, checked against what Python's jinja2 prints for the same source. */
class ChatTemplateTest {
    static String render(String src, Map<String, Object> vars) {
        return ChatTemplate.parse(src, "test").render(vars);
    }

    static final List<Map<String, Object>> CHAT = List.of(
            Map.of("role", "system", "content", "Be brief."),
            Map.of("role", "user", "content", "  Hi  "),
            Map.of("role", "assistant", "content", "<think>\nhmm\n</think>\n\nHello"));

    @Test
    void trimBlocksAndLstripBlocks() {
        String src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content | trim }}]\n    {% endif %}\n{% endfor %}\nend";
        assertThat(render(src, Map.of("messages", CHAT))).isEqualTo("[Hi]\nend");
    }

    @Test
    void dashControlsStripAllWhitespaceIncludingNewlines() {
        assertThat(render("a  \n  {{- 'b' -}}  \n  c", Map.of())).isEqualTo("abc");
        assertThat(render("x\n    {{- 'y' }}", Map.of())).isEqualTo("xy");
        assertThat(render("{%- if true %}\n  yes\n{%- endif %}", Map.of())).isEqualTo("  yes");
    }

    @Test
    void namespaceSurvivesLoopScopeButPlainSetDoesNot() {
        String src = "{% set ns = namespace(n=0) %}{% set plain = 0 %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% set plain = plain + 1 %}{% endfor %}{{ ns.n }}/{{ plain }}";
        assertThat(render(src, Map.of("messages", CHAT))).isEqualTo("3/0");
    }

    @Test
    void slicingAndLoopVariables() {
        String src = "{% for m in messages[::-1] %}{{ loop.index0 }}{{ m.role[0] }}{% if not loop.last %},{% endif %}{% endfor %}|{{ messages[1:]|length }}|{{ 'abcdef'[1:4] }}|{{ messages[-1].role }}";
        assertThat(render(src, Map.of("messages", CHAT))).isEqualTo("0a,1u,2s|2|bcd|assistant");
    }

    @Test
    void stringMethodsAsPython() {
        String src = "{% set c = messages[2].content %}{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}|{{ c.startswith('<think>') }}|{{ ' x '.strip() }}|{{ 'a-b'.replace('-', '+') }}|{{ 'Hi'.upper() }}";
        assertThat(render(src, Map.of("messages", CHAT))).isEqualTo("Hello|hmm|True|x|a+b|HI");
    }

    @Test
    void testsAndOperators() {
        var vars = new HashMap<String, Object>();
        vars.put("x", null);
        vars.put("n", 7);
        String src = "{{ x is none }}{{ y is defined }}{{ n is odd }}{{ n is divisibleby 7 }}{{ 'a' in 'cat' }}{{ 'z' not in ['a'] }}{{ 7 // 2 }}{{ 7 / 2 }}{{ 2 ** 3 }}{{ 'a' ~ 1 }}{{ 1 if false else 2 }}";
        assertThat(render(src, vars)).isEqualTo("TrueFalseTrueTrueTrueTrue33.58a12");
    }

    @Test
    void tojsonMatchesPythonJsonDumps() {
        var tool = new LinkedHashMap<String, Object>();
        tool.put("name", "get_weather");
        tool.put("parameters", Map.of("city", "Zürich"));
        tool.put("n", List.of(1, 2.5, true));
        assertThat(render("{{ t | tojson }}", Map.of("t", tool)))
                .isEqualTo("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Zürich\"}, \"n\": [1, 2.5, true]}");
        assertThat(render("{{ {'a': [1]} | tojson(indent=2) }}", Map.of())).isEqualTo("{\n  \"a\": [\n    1\n  ]\n}");
        assertThat(render("{{ {'a': [1, 2], 'b': none} | tojson(separators=(',', ':')) }}", Map.of())).isEqualTo("{\"a\":[1,2],\"b\":null}");
        assertThat(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", Map.of())).isEqualTo("{\"a\": 2, \"b\": 1}");
    }

    @Test
    void filtersAndMacros() {
        String src = "{% macro show(m, sep=': ') %}{{ m.role | capitalize }}{{ sep }}{{ m.content }}{% endmacro %}"
                + "{{ show(messages[0]) }}|{{ messages | map(attribute='role') | join(',') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ missing | default('d') }}";
        assertThat(render(src, Map.of("messages", CHAT))).isEqualTo("System: Be brief.|system,user,assistant|1|d");
    }

    @Test
    void raiseExceptionStopsRenderingWithTheMessage() {
        assertThatThrownBy(() -> render("{{ raise_exception('Conversation roles must alternate') }}", Map.of()))
                .isInstanceOf(TemplateException.class).hasMessageContaining("Conversation roles must alternate");
    }

    @Test
    void strftimeNowFormatsToday() {
        assertThat(render("{{ strftime_now('%Y') }}", Map.of())).matches("\\d{4}");
    }

    @Test
    void syntaxErrorsNameTheLine() {
        assertThatThrownBy(() -> ChatTemplate.parse("line1\n{% if x %}\nno end", "tpl.json")).isInstanceOf(TemplateException.class)
                .hasMessageContaining("tpl.json").hasMessageContaining("endif");
        assertThatThrownBy(() -> ChatTemplate.parse("a\nb\n{{ x + }}", "t")).hasMessageContaining("line 3");
    }
}
