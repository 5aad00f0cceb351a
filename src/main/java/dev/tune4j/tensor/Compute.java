package dev.tune4j.tensor;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Where tensors live and in which precision activations and frozen weights are kept: the one place the model code asks.
 * CPU runs fp32 (the machine has no fast bf16); CUDA runs bf16 weights and activations (DESIGN.md "Performance").
 * Logits and losses are always taken back to fp32.
 */
public record Compute(boolean cuda, boolean bf16) {
    private static final Compute CPU = new Compute(false, false);

    /** fp32 on the CPU: the reference path, used by every golden test. */
    public static Compute cpu() {
        Tensors.init();
        return CPU;
    }

    /** CUDA + bf16 when the GPU build of libtorch sees a device, else {@link #cpu()}. {@code TUNE4J_DEVICE=cpu} forces the CPU. */
    public static Compute auto() {
        Tensors.init();
        if ("cpu".equalsIgnoreCase(System.getenv("TUNE4J_DEVICE"))) return CPU;
        return torch.cuda_is_available() ? new Compute(true, true) : CPU;
    }

    public torch.ScalarType dtype() {
        return bf16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float;
    }

    /** A fresh Device handle (callers inside a step scope get it freed with the scope). */
    public Device device() {
        return new Device(cuda ? torch.DeviceType.CUDA : torch.DeviceType.CPU);
    }

    /** Moves a host fp32 tensor to this device and precision (no copy when it is already there). */
    public Tensor place(Tensor hostFloat) {
        if (!cuda && !bf16) return hostFloat;
        return hostFloat.to(device(), dtype());
    }

    /**
     * Trainable parameters (LoRA A/B, and later full weights) are fp32 on the compute device whatever the activation
     * precision, and require grad (DESIGN.md: fp32 LoRA parameters and optimizer state).
     */
    public Tensor placeTrainable(Tensor hostFloat) {
        Tensor t = cuda ? hostFloat.to(device(), torch.ScalarType.Float) : hostFloat.to(torch.ScalarType.Float);
        t.set_requires_grad(true);
        return t;
    }

    /** Integer tensors (ids, positions) go to the device but keep their type. */
    public Tensor placeIndex(Tensor hostLong) {
        if (!cuda) return hostLong;
        return hostLong.to(device(), torch.ScalarType.Long);
    }

    public String describe() {
        return (cuda ? "cuda" : "cpu") + "/" + (bf16 ? "bf16" : "fp32");
    }
}
