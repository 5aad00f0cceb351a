package dev.tune4j.train;

import dev.tune4j.model.LlamaModel;
import org.bytedeco.javacpp.PointerScope;

/**
 * The forward/backward half of one optimizer step: {@code gradAccum} micro-batches starting at {@code firstMicro}, each
 * scaled by the number of tokens predicted in the whole step (so the gradient is the mean over all of them).
 */
public final class Accumulation {
    private Accumulation() {}

    /** Mean loss of the step, tokens seen, and the micro-batch index after it. */
    public record Result(double loss, long tokens, long nextMicro) {}

    public static Result run(LlamaModel model, Batches train, long firstMicro, int gradAccum, boolean checkpoint, int lossChunk) {
        long normalizer = 0, tokens = 0, micro = firstMicro;
        for (int k = 0; k < gradAccum; k++) normalizer += train.predictedAt(firstMicro + k);
        double lossSum = 0;
        for (int k = 0; k < gradAccum; k++, micro++) {
            try (PointerScope s = new PointerScope()) {
                var mb = train.get(micro, model.compute);
                tokens += mb.tokens();
                lossSum += Backprop.tokenLoss(model, mb.batch(), mb.labels(), Math.max(1, normalizer), checkpoint, lossChunk).loss();
            }
        }
        return new Result(lossSum / Math.max(1, normalizer), tokens, micro);
    }
}
