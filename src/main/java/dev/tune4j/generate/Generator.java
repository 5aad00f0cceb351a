package dev.tune4j.generate;

import dev.tune4j.hf.UserError;
import dev.tune4j.model.LlamaModel;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * One prompt, decoded on the caller's thread through the engine's own {@link Decoder} (prefill, then one step per
 * token: the same code as continuous batching, with a batch of one). Every step runs in its own pointer scope, so
 * native memory stays flat however long the generation. Adapters are not routed: every enabled one applies.
 */
public final class Generator {
    private Generator() {}

    /** Called with each new token id as soon as it is chosen (streaming). */
    public interface TokenListener {
        void onToken(int id);
    }

    public enum StopReason {MAX_TOKENS, EOS, STOP_STRING}

    /** The new tokens (prompt excluded); {@code text} is the decoded new text (cut before a stop string), or null without a decoder. */
    public record Result(long[] tokens, String text, StopReason reason) {}

    /**
     * @param decoder token ids → text, needed only for stop strings and {@link Result#text()}; may be null
     */
    public static Result generate(LlamaModel model, long[] prompt, GenerationConfig cfg, Function<long[], String> decoder, TokenListener listener) {
        return generateAll(model, List.of(prompt), cfg, decoder, listener, 1).getFirst();
    }

    /**
     * Several prompts decoded together — continuous batching on the caller's thread, at most {@code batch} sequences per
     * step, each leaving when done and the next prompt joining — with the same settings for all (eval --generate, the
     * run report's samples). Results in prompt order; {@code listener} (may be null) hears the tokens of every sequence.
     */
    public static List<Result> generateAll(LlamaModel model, List<long[]> prompts, GenerationConfig cfg, Function<long[], String> decoder, TokenListener listener, int batch) {
        if (!cfg.stopStrings().isEmpty() && decoder == null) throw new IllegalStateException("stop strings need a tokenizer to decode");
        var seqs = new ArrayList<Sequence>();
        var texts = new ArrayList<StringBuilder>();
        for (long[] prompt : prompts) {
            if (prompt.length == 0) throw new UserError("the prompt must hold at least one token (e.g. BOS)");
            var text = new StringBuilder();
            Listener l = new Listener() {
                public void onDelta(String t, long[] ids) {
                    text.append(t);
                    if (listener != null) for (long id : ids) listener.onToken((int) id);
                }

                public void onFinish(FinishReason reason, Usage usage, Throwable error) {}
            };
            texts.add(text);
            seqs.add(new Sequence(new Request(null, prompt, Sampling.of(cfg)), l, false, decoder, new Sampler(cfg)));
        }
        if (cfg.maxNewTokens() > 0) {
            var d = new Decoder(model);
            var running = new ArrayList<Sequence>();
            int next = 0;
            try {
                while (next < seqs.size() || !running.isEmpty()) {
                    while (running.size() < batch && next < seqs.size()) { // join: prefill chooses the first token
                        d.join(seqs.get(next++), running);
                    }
                    if (running.isEmpty()) continue;
                    d.step(running);
                    Decoder.retire(running); // leave
                }
            } finally {
                for (Sequence s : seqs) if (s.cache != null) s.cache.close();
            }
        }
        var out = new ArrayList<Result>();
        for (int i = 0; i < seqs.size(); i++) {
            Sequence s = seqs.get(i);
            long[] ids = s.output();
            boolean eos = ids.length > 0 && cfg.eosTokenIds().contains((int) ids[ids.length - 1]);
            StopReason reason = s.text.stopped() ? StopReason.STOP_STRING : eos ? StopReason.EOS : StopReason.MAX_TOKENS;
            out.add(new Result(ids, decoder == null ? null : texts.get(i).toString(), reason));
        }
        return out;
    }
}
