package dev.tune4j.train;

import dev.tune4j.dist.Group;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * ZeRO stage 1 and 2 (DeepSpeed's names): an optimizer over this rank's run of the parameters only, so its state is
 * 1/world of the whole. After each update every owner broadcasts its run, so all ranks hold the same weights. State
 * names are those of the unsharded optimizer ("exp_avg.17"), and a checkpoint holds all of it — rank 0 gathers it one
 * tensor at a time — so a checkpoint reads the same whatever {@code --zero} was.
 */
public final class ZeroOptimizer implements Optimizer {
    private final Optimizer inner;
    private final List<Tensor> params;
    private final int[] owner, mine; // mine: the global index of each of the inner optimizer's parameters
    private final Group group;

    /** @param inner an AdamW over exactly the parameters {@code owner} gives this rank, in their order */
    public ZeroOptimizer(Optimizer inner, List<Tensor> params, int[] owner, Group group) {
        this.inner = inner;
        this.params = List.copyOf(params);
        this.owner = owner;
        this.group = group;
        var m = new ArrayList<Integer>();
        for (int i = 0; i < owner.length; i++) if (owner[i] == group.rank()) m.add(i);
        this.mine = m.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The parameters rank {@code rank} owns (what its inner optimizer is built over). */
    public static <T> List<T> owned(List<T> all, int[] owner, int rank) {
        var out = new ArrayList<T>();
        for (int i = 0; i < all.size(); i++) if (owner[i] == rank) out.add(all.get(i));
        return out;
    }

    @Override
    public void step(double lr) {
        inner.step(lr);
        for (int r = 0; r < group.world(); r++) group.broadcast(owned(params, owner, r), r); // each run from its owner
    }

    @Override
    public void zeroGrad() {
        try (PointerScope s = new PointerScope()) {
            for (Tensor p : params) if (p.grad().defined()) p.mutable_grad().reset();
        }
    }

    @Override
    public long steps() {
        return inner.steps();
    }

    @Override
    public void setSteps(long steps) {
        inner.setSteps(steps);
    }

    /** This rank's state under the unsharded names (what a checkpoint restores into). */
    @Override
    public LinkedHashMap<String, Tensor> state() {
        var m = new LinkedHashMap<String, Tensor>();
        inner.state().forEach((name, t) -> {
            int dot = name.lastIndexOf('.');
            m.put(name.substring(0, dot) + "." + mine[Integer.parseInt(name.substring(dot + 1))], t);
        });
        return m;
    }

    /**
     * Every rank's state on rank 0, in the unsharded optimizer's order (AdamW: exp_avg.i, exp_avg_sq.i); a collective:
     * every rank calls it, the owners send, rank 0 receives into tensors of the caller's scope. Empty on the others.
     */
    @Override
    public LinkedHashMap<String, Tensor> gatherState() {
        var own = state();
        var all = new LinkedHashMap<String, Tensor>();
        for (int i = 0; i < params.size(); i++)
            for (String kind : new String[]{"exp_avg", "exp_avg_sq"}) {
                String name = kind + "." + i;
                if (owner[i] == 0) {
                    if (group.leader()) all.put(name, own.get(name));
                } else if (group.leader()) {
                    Tensor t = torch.zeros_like(params.get(i));
                    group.receive(t, owner[i]);
                    all.put(name, t);
                } else if (owner[i] == group.rank()) group.send(own.get(name), 0);
            }
        return all;
    }

    @Override
    public void close() {
        inner.close();
    }
}
