package dev.tune4j.eval;

import dev.tune4j.hf.UserError;
import dev.tune4j.data.PreferencePair;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.train.Evaluation;
import dev.tune4j.train.PairBatches;
import dev.tune4j.train.PreferenceLoss;

import java.util.List;

/**
 * A model's preference loss, reward accuracy and margins on held-out pairs, through the same batches, head and loss as
 * training: policy = the model as given (its adapter on); reference = what {@code toReference} switches to.
 */
public final class Preferences {
    private Preferences() {}

    public static Evaluation.Result of(LlamaModel m, List<PreferencePair> pairs, PreferenceLoss.Config cfg, Runnable toReference, Runnable toPolicy,
                                       long padId, int batchSize, int chunk) {
        if (pairs.isEmpty()) throw new UserError("no preference pairs to evaluate");
        PairBatches.checkIds(java.nio.file.Path.of("the pairs"), pairs, List.of(), List.of(), List.of(), m.config.vocabSize());
        var reference = cfg.type().needsReference() ? PreferenceLoss.switched(m, toReference, toPolicy, chunk) : null;
        var data = PairBatches.pairs(pairs, batchSize, padId, 0, cfg.type() == PreferenceLoss.Type.ORPO, 0);
        return Evaluation.run(m, data, new PreferenceLoss(cfg, reference), chunk);
    }

    /** KTO's loss and metrics on unpaired examples (batches of at least two: the KL rows pair each prompt with another completion). */
    public static Evaluation.Result kto(LlamaModel m, List<dev.tune4j.data.KtoExample> examples, double beta, double desirableWeight, double undesirableWeight,
                                        Runnable toReference, Runnable toPolicy, long padId, int batchSize, int chunk) {
        if (examples.size() < 2) throw new UserError("KTO needs at least two examples (its KL estimate pairs each prompt with another completion)");
        PairBatches.checkIds(java.nio.file.Path.of("the examples"), List.of(), List.of(), examples, List.of(), m.config.vocabSize());
        boolean[] desirable = new boolean[examples.size()];
        for (int i = 0; i < desirable.length; i++) desirable[i] = examples.get(i).desirable();
        var data = PairBatches.kto(examples, Math.max(2, batchSize), padId, 0, 0);
        var loss = new dev.tune4j.train.KtoLoss(beta, desirableWeight, undesirableWeight, desirable, PreferenceLoss.switched(m, toReference, toPolicy, chunk));
        return Evaluation.run(m, data, loss, chunk);
    }

    /** The same against a separate reference model (a fully fine-tuned policy against its base). */
    public static Evaluation.Result against(LlamaModel policy, LlamaModel reference, List<PreferencePair> pairs, PreferenceLoss.Config cfg, long padId, int batchSize, int chunk) {
        PairBatches.checkIds(java.nio.file.Path.of("the pairs"), pairs, List.of(), List.of(), List.of(), policy.config.vocabSize());
        var data = PairBatches.pairs(pairs, batchSize, padId, 0, cfg.type() == PreferenceLoss.Type.ORPO, 0);
        return Evaluation.run(policy, data, new PreferenceLoss(cfg, PreferenceLoss.switched(reference, () -> {}, () -> {}, chunk)), chunk);
    }
}
