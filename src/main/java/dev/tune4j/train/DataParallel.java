package dev.tune4j.train;

import dev.tune4j.dist.Group;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.List;

/**
 * The loop's process-group seam: what a step does between backward and update when several processes train one model.
 * Each rank's loss is already its part of the global loss (token cross-entropy divides by the global token count,
 * mean-over-rows losses are weighted by the rank's share), so gradients are summed, not averaged. Without ZeRO (and
 * under {@code --zero 1}) every rank all-reduces every gradient; under {@code --zero 2} each owner's run of gradients
 * is reduced to it and the other ranks drop theirs. With one process every call is a no-op.
 */
public final class DataParallel {
    public static final DataParallel NONE = new DataParallel(Group.SINGLE, 0, null);

    private final Group group;
    private final int zero;
    private final int[] owner; // ZeRO: the rank that owns each trainable parameter's optimizer state (and, zero 2, gradient)
    private long reduceNanos;  // time spent summing gradients over the ranks (bench train reports it per step)

    private DataParallel(Group group, int zero, int[] owner) {
        this.group = group;
        this.zero = zero;
        this.owner = owner;
    }

    /** @param zero 0 (replicated), 1 (optimizer state partitioned) or 2 (gradients too) */
    public static DataParallel of(Group group, int zero, List<Tensor> params) {
        if (group.single()) return NONE;
        int[] owner = zero == 0 ? null : Group.owners(params.stream().mapToLong(Tensor::numel).toArray(), group.world());
        return new DataParallel(group, zero, owner);
    }

    public Group group() {
        return group;
    }

    /** The owner rank of each parameter (ZeRO), or null when every rank keeps all optimizer state. */
    public int[] owners() {
        return owner;
    }

    /** AdamW over the parameters, or, under ZeRO, over this rank's run of them only. */
    public Optimizer adamW(List<AdamW.Param> params, boolean offload) {
        if (owner == null) return new AdamW(params, 0.9, 0.999, 1e-8, offload);
        var mine = ZeroOptimizer.owned(params, owner, group.rank());
        return new ZeroOptimizer(new AdamW(mine, 0.9, 0.999, 1e-8, offload), params.stream().map(AdamW.Param::tensor).toList(), owner, group);
    }

    /** Seconds spent summing gradients over the ranks so far. */
    public double reduceSeconds() {
        return reduceNanos / 1e9;
    }

    /** Sums the gradients over the ranks: all-reduce, or (zero 2) reduce to each owner, then dropped by the others. */
    void reduceGradients(List<Tensor> params) {
        if (group.single()) return;
        long t0 = System.nanoTime();
        try {
            sumGradients(params);
        } finally {
            reduceNanos += System.nanoTime() - t0;
        }
    }

    private void sumGradients(List<Tensor> params) {
        try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            var grads = new ArrayList<Tensor>();
            for (Tensor p : params) {
                // a rank whose rows were all padding, or an empty last batch, ran no backward: it adds zeros
                if (!p.grad().defined()) p.mutable_grad().put(torch.zeros_like(p));
                grads.add(p.grad());
            }
            if (zero < 2) {
                group.allReduce(grads);
                return;
            }
            for (int r = 0; r < group.world(); r++) {
                var run = new ArrayList<Tensor>();
                for (int i = 0; i < params.size(); i++) if (owner[i] == r) run.add(grads.get(i));
                group.reduce(run, r);
            }
            for (int i = 0; i < params.size(); i++) if (owner[i] != group.rank()) params.get(i).mutable_grad().reset();
        }
    }

    /** clip_grad_norm_ over the whole model: under zero 2 each rank holds only its gradients, so the squared norms are summed. */
    double clip(List<Tensor> params, double maxNorm) {
        if (zero < 2 || group.single()) return GradClip.clip(params, maxNorm);
        return GradClip.clip(params, maxNorm, sq -> group.sum(sq)[0]);
    }
}
