package dev.tune4j.text;

import java.util.List;
import java.util.Map;

/**
 * A chat template from {@code tokenizer_config.json}, parsed once and rendered as transformers'
 * {@code apply_chat_template(tokenize=False)} does: Jinja2 with trim_blocks and lstrip_blocks, the {@code tojson} filter
 * (ensure_ascii=False), and the {@code raise_exception} and {@code strftime_now} globals. The engine is our own
 * (docs/decisions/0001-own-jinja-engine.md): Jinjava could not run namespace(), slicing or {@code {{-} under lstrip_blocks.
 * Sandboxed as transformers' environment is: using an undefined value raises, range, recursion and output are bounded.
 */
public final class ChatTemplate {
    private final String source, name;
    private final List<TemplateParser.Node> nodes;

    private ChatTemplate(String source, String name, List<TemplateParser.Node> nodes) {
        this.source = source;
        this.name = name;
        this.nodes = nodes;
    }

    /** @param name used in error messages (e.g. the file it came from) */
    public static ChatTemplate parse(String source, String name) {
        try {
            return new ChatTemplate(source, name, new TemplateParser(source, name).parse());
        } catch (StackOverflowError e) {
            throw new TemplateException(name + ": RecursionError: the template nests too deeply to parse");
        }
    }

    public String source() {
        return source;
    }

    /** Renders with the given variables (messages, add_generation_prompt, bos_token, ...). */
    public String render(Map<String, Object> variables) {
        return new TemplateRenderer(name, variables).render(nodes);
    }
}
