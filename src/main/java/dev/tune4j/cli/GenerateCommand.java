package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.generate.Generator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** One completion, streamed to stdout as it is generated. */
@Command(name = "generate", mixinStandardHelpOptions = true, description = "Generate text from a prompt (streams to stdout; statistics on stderr).")
final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "model folder")
    Path model;

    @Option(names = "--adapter", description = "PEFT LoRA adapter folder to apply (e.g. a run's adapter/)")
    Path adapter;

    @Option(names = "--prompt", description = "prompt text (tokenized with the folder's tokenizer; BOS added as the tokenizer does)")
    String prompt;

    @Option(names = "--prompt-ids", description = "prompt as a JSON list of token ids, e.g. [1, 403]")
    String promptIds;

    @Option(names = "--chat", description = "wrap --prompt as one user message in the model's chat template")
    boolean chat;

    @Option(names = "--ids", description = "also print the generated token ids as a JSON list (last line)")
    boolean printIds;

    @Mixin
    SamplingOptions sampling;

    @Override
    public Integer call() throws Exception {
        if ((prompt == null) == (promptIds == null)) throw new UserError("give exactly one of --prompt TEXT or --prompt-ids JSON");
        sampling.check();
        try (LoadedModel lm = LoadedModel.open(model, adapter)) {
            long[] ids;
            if (promptIds != null) {
                try {
                    ids = new ObjectMapper().readValue(promptIds, long[].class);
                } catch (Exception e) {
                    throw new UserError("--prompt-ids: expected a JSON list of integers, found '" + promptIds + "'");
                }
            } else if (chat) {
                String text = lm.requireTokenizer().applyChatTemplate(List.of(Map.of("role", "user", "content", prompt)), true);
                ids = lm.tokenizer().encode(text, false);
            } else ids = lm.requireTokenizer().encode(prompt, true);
            if (ids.length == 0) throw new UserError(promptIds != null ? "--prompt-ids: expected at least one token id, found []" : "--prompt: no tokens to start from");
            for (long id : ids)
                if (id < 0 || id >= lm.model().config.vocabSize())
                    throw new UserError((promptIds != null ? "--prompt-ids: " : "--prompt: ") + "token id " + id + " is outside the vocabulary [0, " + lm.model().config.vocabSize() + ")");
            var config = sampling.toConfig(lm.eosIds(), ids.length, lm.model().config.maxPositionEmbeddings(), false);
            var out = new StreamingPrinter(lm.tokenizer(), ids, sampling.stop);
            long t0 = System.nanoTime();
            var r = Generator.generate(lm.model(), ids, config,
                    lm.tokenizer() == null ? null : x -> lm.tokenizer().decode(x, true), out::onToken);
            double s = (System.nanoTime() - t0) / 1e9;
            out.finish(r);
            if (printIds) System.out.println(new ObjectMapper().writeValueAsString(r.tokens()));
            System.err.printf("%d prompt + %d new tokens in %.2f s (%.1f tokens/s), stopped by %s%n", ids.length, r.tokens().length, s,
                    r.tokens().length / s, r.reason());
        }
        return 0;
    }
}
