package dev.tune4j.generate;

import dev.tune4j.model.KvCache;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.Arrays;
import java.util.function.Function;

/**
 * Autoregressive decoding with a KV cache: one prefill pass over the prompt, then one token per step. Each step runs in
 * its own pointer scope, so native memory stays flat however long the generation.
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
        if (prompt.length == 0) throw new dev.tune4j.hf.UserError("the prompt must hold at least one token (e.g. BOS)");
        if (!cfg.stopStrings().isEmpty() && decoder == null) throw new IllegalStateException("stop strings need a tokenizer to decode");
        long[] seq = Arrays.copyOf(prompt, prompt.length + cfg.maxNewTokens());
        int len = prompt.length;
        var sampler = new Sampler(cfg);
        StopReason reason = StopReason.MAX_TOKENS;
        String text = null;
        try (KvCache cache = model.newCache(1, prompt.length + Math.max(cfg.maxNewTokens(), 1));
             NoGradGuard noGrad = new NoGradGuard()) {
            long[] step = prompt;
            while (len - prompt.length < cfg.maxNewTokens()) {
                float[] logits;
                try (PointerScope scope = new PointerScope()) {
                    Tensor ids = model.compute.placeIndex(Tensors.longs(step, 1, step.length));      // (1, T)
                    Tensor hidden = model.forward(ids, null, null, cache, null);                     // (1, T, C)
                    Tensor last = hidden.narrow(1, hidden.size(1) - 1, 1);                           // (1, 1, C)
                    logits = Tensors.toFloats(model.logits(last));                                   // (V)
                }
                int next = sampler.next(logits, seq, len);
                seq[len++] = next;
                if (listener != null) listener.onToken(next);
                if (cfg.eosTokenIds().contains(next)) {
                    reason = StopReason.EOS;
                    break;
                }
                if (!cfg.stopStrings().isEmpty()) {
                    text = decoder.apply(Arrays.copyOfRange(seq, prompt.length, len));
                    int cut = firstStop(text, cfg);
                    if (cut >= 0) {
                        text = text.substring(0, cut);
                        reason = StopReason.STOP_STRING;
                        break;
                    }
                }
                step = new long[]{next};
            }
        }
        long[] out = Arrays.copyOfRange(seq, prompt.length, len);
        if (decoder != null && reason != StopReason.STOP_STRING) text = decoder.apply(out);
        return new Result(out, text, reason);
    }

    private static int firstStop(String text, GenerationConfig cfg) {
        int best = -1;
        for (String s : cfg.stopStrings()) {
            int i = text.indexOf(s);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }
}
