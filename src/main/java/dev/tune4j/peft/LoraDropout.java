package dev.tune4j.peft;

import dev.tune4j.tensor.Dropout;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorBase;
import org.bytedeco.pytorch.TensorTensorHook;
import org.bytedeco.pytorch.global.torch;

import java.util.List;

/**
 * LoRA's term with dropout, differentiated by hand so that autograd keeps neither the mask nor the dropped-out input.
 * Through autograd, every adapted projection keeps its own mask and x·m (4 bytes an element in bf16: 20 KB per token and
 * layer at the SmolLM2-135M shape, 440 MiB of a 2.5 GB step). Here forward keeps only the flat indices of the dropped
 * elements (tensor/Dropout: 4 bytes per dropped element, 0.2 bytes an element at p = 0.05), as fused GPU dropout kernels
 * keep a seed rather than the mask, and backward needs besides them only the projection's input x, which q/k/v (and
 * gate/up) share and keep alive anyway. (Drawing the mask again from its seed in backward cost as much as the first
 * draw: 0.3 s of a 3.3 s SmolLM2 step; decision 0011.)
 *
 * <p>Forward, outside the graph: h = (x·m) Aᵀ, a leaf. In the graph: y = h (c·B)ᵀ, so autograd differentiates B itself
 * and hands over gh = ∂L/∂h. A hook on h adds ghᵀ(x·m) to A's gradient and computes x's share (gh A)·m; a hook on x adds
 * that share to x's gradient. The share is always there first: x's gradient is complete only when the node that made x
 * runs, which waits for the base GEMM that x also feeds; that GEMM and this branch get their gradients from the same
 * sum, so this branch is queued before x's node is ready, and libtorch's CPU engine pops the most recently created ready
 * node first (its ready queue orders by sequence number; x's node is older than every node here). Two inputs break
 * this, loudly: a leaf x (its hook may run first: addShare throws) and an x that no other node reads (it never gets a
 * gradient: the next forward throws). Linear passes neither while training. (Before, a zero term h + 0·x[…, :1] tied
 * x's gradient to this branch: its backward wrote an input-sized zero gradient and one more sum per projection;
 * decision 0011.)
 * These are the products autograd would form, in the same precision (LoraDropoutTest: equal to autograd's with the
 * mask kept); where several projections share x, the order in which their shares join x's gradient may differ.
 */
final class LoraDropout implements AutoCloseable {
    private static final Tensor KEEP = Tensors.escape(Tensor::new); // a hook's answer for "leave the gradient as it is"
    // Hooks that have run, closed at the next hook call or forward (a hook cannot free itself while it runs): a hook's
    // native callback left until the next step would sit amid freed activations and split glibc's heap (as h did)
    private static final ThreadLocal<List<TensorTensorHook>> DONE = ThreadLocal.withInitial(java.util.ArrayList::new); // backward runs on the forward's thread (CPU)

    static void closeDone() {
        var done = DONE.get();
        done.forEach(TensorTensorHook::close);
        done.clear();
    }

    private final LoraLinear lora;
    private final boolean inputGrad;
    private Tensor dropped;     // the mask, as the flat indices it drops; kept from forward to backward
    private Tensor x;           // own handle to the input, dropped once backward has used it
    private Tensor h;           // own handle to h, to tell whether the graph is gone; dropped once backward is through
    private Tensor share;       // x's gradient through this branch, from the hook on h to the hook on x
    private final TensorTensorHook onH, onX;
    private boolean spent;      // backward has run through this branch; its hooks went to DONE (closed there)

    /** Whether this forward takes the hand-differentiated path: training with dropout, under gradients, on the CPU. */
    static boolean applies(LoraLinear lora, Tensor x, double p) {
        return p > 0 && GradMode.is_enabled() && lora.lora_A.requires_grad() && Dropout.ownDropout(x);
    }

    /**
     * The term c·B(A(dropout(x))) for one forward, in x's dtype (the adapters' GEMMs run in it). {@code live} holds the
     * terms of this projection whose graphs may still call back; those whose backward has run or whose graph is gone are
     * closed here.
     */
    static Tensor delta(LoraLinear lora, Tensor x, double p, double c, List<LoraDropout> live) {
        closeDone();
        live.removeIf(r -> {
            boolean done = r.spent || r.h.use_count() <= 1; // backward through, or the graph is gone without one
            if (done && r.share != null)
                throw new IllegalStateException("LoRA dropout: the input's share of the gradient was computed but never added (the input fed no other node of the graph)");
            if (done) r.close();
            return done;
        });
        var r = new LoraDropout(lora, x, p);
        live.add(r);
        return torch.linear(r.h, lora.lora_B.mul(new Scalar(c)).to(x.scalar_type())); // (…, out); autograd differentiates B (c on B: no (…, out) pass)
    }

    private LoraDropout(LoraLinear lora, Tensor x, double p) {
        this.lora = lora;
        this.inputGrad = x.requires_grad();
        this.x = Tensors.escape(() -> new Tensor(x));
        long seed = Dropout.seed();
        this.dropped = Tensors.escape(() -> Dropout.droppedAt(x.numel(), p, seed));
        Tensor xmA;
        try (var ng = new NoGradGuard()) { // x·m dies with this scope
            xmA = Tensors.scoped(() -> torch.linear(Dropout.dropped(x, dropped), lora.lora_A.to(x.scalar_type()))); // (…, r)
        }
        xmA.set_requires_grad(true); // a leaf: its hook sees gh
        this.h = Tensors.escape(() -> new Tensor(xmA));
        this.onH = hook(this::backward);
        h.register_hook(onH);
        if (!inputGrad) {
            this.onX = null;
            return;
        }
        this.onX = hook(this::addShare);
        x.register_hook(onX);
    }

    /** A tensor hook running {@code body} on the gradient and leaving the gradient as autograd has it (or as body changed it in place). */
    private static TensorTensorHook hook(java.util.function.Consumer<TensorBase> body) {
        return Tensors.escape(() -> new TensorTensorHook() {
            @Override
            public TensorBase call(TensorBase grad) {
                try {
                    closeDone();
                    body.accept(grad);
                    return KEEP;
                } finally {
                    grad.close(); // JavaCPP's copy of the argument, attached to the caller's scope: it would hold the gradient to the step's end
                }
            }
        });
    }

    /** gh = ∂L/∂h (…, r): A's gradient and x's share, with the forward's mask. */
    private void backward(TensorBase ghBase) {
        if (x == null) throw new IllegalStateException("LoRA dropout: backward ran twice through one forward (a retained graph is not supported)");
        try (PointerScope s = new PointerScope(); var ng = new NoGradGuard()) {
            Tensor gh = new Tensor(ghBase), a = lora.lora_A.to(x.scalar_type());
            if (inputGrad) share = Tensors.escape(() -> gh.matmul(a)); // (…, in), its dropped elements zeroed below
            Tensor kept = inputGrad ? Dropout.dropped(x, dropped, share) : Dropout.dropped(x, dropped); // one pass over the mask
            long r = gh.size(-1), in = x.size(-1);
            Tensor gradA = gh.reshape(-1, r).t().mm(kept.reshape(-1, in)).to(torch.ScalarType.Float); // (r, in)
            Tensor acc = lora.lora_A.grad();
            if (acc.defined()) acc.add_(gradA);
            else lora.lora_A.mutable_grad().put(gradA);
            x.close(); // backward needs x and the mask no longer
            x = null;
            dropped.close();
            dropped = null;
            if (!inputGrad) spend();
        }
    }

    /**
     * Backward is through this branch: what the state still holds goes now, not at the next forward (between steps a
     * live block amid freed activations splits the heap: glibc could not reuse the space around it).
     */
    private void spend() {
        spent = true;
        h.close();
        h = null;
        DONE.get().add(onH);
        if (onX != null) DONE.get().add(onX);
    }

    /** x's gradient is complete but for this branch's share (computed first: see the class comment): add the share in place. */
    private void addShare(TensorBase gx) {
        if (share == null) throw new IllegalStateException("LoRA dropout: the input's gradient was complete before this branch's backward ran (is x a leaf?)");
        try (PointerScope s = new PointerScope(); var ng = new NoGradGuard()) {
            // x's gradient is the base GEMM's own output or a sum autograd formed over several: a buffer nothing else holds
            new Tensor(gx).add_(share);
        }
        share.close();
        share = null;
        spend();
    }

    @Override
    public void close() {
        if (x != null) x.close();
        if (dropped != null) dropped.close();
        if (share != null) share.close();
        if (h != null) h.close();
        if (!spent) {
            onH.close();
            if (onX != null) onX.close();
        }
    }
}
