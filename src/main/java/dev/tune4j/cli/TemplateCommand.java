package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.text.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** Prints a conversation exactly as the chat template renders it (no trailing newline added): for checking templates. */
@Command(name = "template", mixinStandardHelpOptions = true, description = "Render messages with a folder's chat template and print the prompt exactly.")
final class TemplateCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "folder with tokenizer.json and tokenizer_config.json (weights not needed)")
    Path model;

    @Option(names = "--messages", required = true, description = "JSON file: a list of {role, content} (or an object with a 'messages' list)")
    Path messages;

    @Option(names = "--add-generation-prompt", description = "end with the assistant header, ready for generation")
    boolean addGenerationPrompt;

    @Override
    public Integer call() {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(messages.toFile());
        } catch (IOException e) {
            throw new UserError(messages + ": not valid JSON: " + e.getMessage());
        }
        JsonNode list = root != null && root.isObject() ? root.get("messages") : root;
        if (list == null || !list.isArray()) throw new UserError(messages + ": expected a JSON list of messages or {\"messages\": [...]}");
        for (int i = 0; i < list.size(); i++)
            if (!list.get(i).isObject() || !list.get(i).has("role"))
                throw new UserError(messages + ": message " + i + " must be an object with 'role' and 'content'");
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> msgs = new ObjectMapper().convertValue(list, List.class);
        try (Tokenizer tok = Tokenizer.load(model)) {
            if (tok.chatTemplate().isEmpty()) throw new UserError(model + "/tokenizer_config.json: no chat_template");
            byte[] out = tok.applyChatTemplate(msgs, addGenerationPrompt).getBytes(StandardCharsets.UTF_8);
            System.out.write(out, 0, out.length);
            System.out.flush();
        }
        return 0;
    }
}
