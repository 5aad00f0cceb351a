package dev.tune4j.generate;

import dev.tune4j.hf.UserError;
import dev.tune4j.model.LlamaModel;

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
        if (prompt.length == 0) throw new UserError("the prompt must hold at least one token (e.g. BOS)");
        if (!cfg.stopStrings().isEmpty() && decoder == null) throw new IllegalStateException("stop strings need a tokenizer to decode");
        if (cfg.maxNewTokens() == 0) return new Result(new long[0], decoder == null ? null : "", StopReason.MAX_TOKENS);
        var text = new StringBuilder();
        Listener l = new Listener() {
            public void onDelta(String t, long[] ids) {
                text.append(t);
                if (listener != null) for (long id : ids) listener.onToken((int) id);
            }

            public void onFinish(FinishReason reason, Usage usage, Throwable error) {}
        };
        var request = new Request(null, prompt, Sampling.of(cfg));
        var s = new Sequence(request, l, false, decoder, new Sampler(cfg));
        var d = new Decoder(model);
        try {
            d.prefill(s);
            while (s.finish == null) d.step(List.of(s));
            s.end(s.finish, null);
        } finally {
            if (s.cache != null) s.cache.close();
        }
        long[] out = s.output();
        boolean eos = cfg.eosTokenIds().contains((int) out[out.length - 1]);
        StopReason reason = s.text.stopped() ? StopReason.STOP_STRING : eos ? StopReason.EOS : StopReason.MAX_TOKENS;
        return new Result(out, decoder == null ? null : text.toString(), reason);
    }
}
