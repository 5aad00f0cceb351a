package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import dev.tune4j.generate.Generator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.Callable;

/** An interactive conversation: each line read is a user turn, rendered with the model's chat template. */
@Command(name = "chat", mixinStandardHelpOptions = true, description = "Chat with a model in the terminal (uses tokenizer_config.json's chat_template). Commands: /reset, /exit.")
final class ChatCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "model folder with tokenizer.json and a chat template")
    Path model;

    @Option(names = "--adapter", description = "PEFT LoRA adapter folder to apply (e.g. a run's adapter/)")
    Path adapter;

    @Option(names = "--system", description = "system prompt")
    String system;

    @Mixin
    SamplingOptions sampling;

    @Override
    public Integer call() throws Exception {
        sampling.check();
        try (LoadedModel lm = LoadedModel.open(model, adapter)) {
            var tok = lm.requireTokenizer();
            if (tok.chatTemplate().isEmpty()) throw new UserError(model + "/tokenizer_config.json: no chat_template, so there is no chat format; use generate");
            int ctx = lm.model().config.maxPositionEmbeddings();
            if (sampling.maxNewTokens != null)
                Limits.inRange("--max-new-tokens", sampling.maxNewTokens, 1, ctx - 1, "max_position_embeddings " + ctx + " minus at least one prompt token");
            var history = new ArrayList<Map<String, Object>>();
            if (system != null) history.add(Map.of("role", "system", "content", system));
            var in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            System.err.println("chat with " + model + " (/reset clears the conversation, /exit or end of input quits)");
            while (true) {
                System.out.print("> ");
                System.out.flush();
                String line = in.readLine();
                if (line == null || line.strip().equals("/exit")) break;
                if (line.strip().equals("/reset")) {
                    history.subList(system != null ? 1 : 0, history.size()).clear();
                    continue;
                }
                if (line.isBlank()) continue;
                history.add(Map.of("role", "user", "content", line));
                long[] ids = tok.encode(tok.applyChatTemplate(history, true), false);
                if (ids.length >= ctx) { // the turn is dropped; the conversation goes on after /reset
                    history.removeLast();
                    System.err.println("note: the conversation (" + ids.length + " tokens) fills the model's context of " + ctx + "; /reset to start again");
                    continue;
                }
                var out = new StreamingPrinter(tok, ids, sampling.stop);
                var r = Generator.generate(lm.model(), ids, sampling.toConfig(lm.eosIds(), ids.length, ctx, true), x -> tok.decode(x, true), out::onToken);
                out.finish(r);
                history.add(Map.of("role", "assistant", "content", r.text().strip()));
            }
        }
        return 0;
    }
}
