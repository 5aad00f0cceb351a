package dev.tune4j.train;

import org.bytedeco.pytorch.Tensor;

import java.util.LinkedHashMap;

/** What the trainer needs from an optimizer; state() is what a checkpoint stores to resume exactly. */
public interface Optimizer extends AutoCloseable {
    void step(double lr);

    void zeroGrad();

    long steps();

    void setSteps(long steps);

    /** Every state tensor by a stable name (fp32 moments, or 8-bit codes and their scales), restored in place by name. */
    LinkedHashMap<String, Tensor> state();

    /**
     * Every state tensor of the run, on the process that writes checkpoints (rank 0): {@link #state()} unless the state is
     * partitioned over processes ({@link ZeroOptimizer}), where every process must call it together.
     */
    default LinkedHashMap<String, Tensor> gatherState() {
        return state();
    }

    @Override
    void close();
}
