package dev.tune4j.tensor;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Where tensors live and in which precision activations, frozen weights and matrix multiplies run: the one place the
 * model code asks. Three precisions: fp32 (the CPU reference path of every golden test); bf16 weights and activations
 * (CUDA, DESIGN.md "Performance"); and on CPUs with bf16 dot products (AVX512_BF16, AMX) bf16 matrix multiplies over fp32
 * activations, as torch's CPU autocast: frozen projections stored bf16, each projection's and the head's GEMM in bf16
 * (oneDNN), their outputs, the SwiGLU product and LoRA's own GEMMs in bf16 as autocast leaves them; the residual
 * stream, norms, RoPE, attention (libtorch's bf16 CPU attention backward is ~16× slower than fp32's), logits and the
 * loss in fp32 (docs/decisions/0008-cpu-bf16-matmul.md, 0010-cpu-bf16-block-activations.md).
 *
 * @param bf16       activations and frozen weights in bf16
 * @param bf16Matmul matrix multiplies in bf16 (true whenever {@code bf16} is)
 */
public record Compute(boolean cuda, boolean bf16, boolean bf16Matmul) {
    private static final Compute CPU = new Compute(false, false);

    public Compute(boolean cuda, boolean bf16) {
        this(cuda, bf16, bf16);
    }

    /** bf16 GEMMs over fp32 activations on the CPU (torch's CPU autocast). */
    public static Compute cpuBf16Matmul() {
        Tensors.useCores(true);
        return new Compute(false, false, true);
    }

    /**
     * The precision for a run: {@code dtype} "float32" or "bfloat16" as the user asked (bfloat16 on the CPU = bf16 GEMMs
     * over fp32 activations), or null for the default: bf16 on CUDA; on the CPU bf16 GEMMs where the CPU has bf16 dot
     * products and the model is wide enough for them to pay (hidden size ≥ {@value #BF16_MATMUL_MIN_HIDDEN}), else fp32.
     */
    public static Compute of(String dtype, long hiddenSize) {
        if (cudaVisible()) return new Compute(true, !"float32".equals(dtype));
        if ("bfloat16".equals(dtype) || (dtype == null && hiddenSize >= BF16_MATMUL_MIN_HIDDEN && CpuFeatures.bf16Dot())) return cpuBf16Matmul();
        return cpu();
    }

    /** Below this width oneDNN's bf16 GEMMs gain nothing over OpenBLAS's fp32 ones (decision 0008's measurements). */
    public static final long BF16_MATMUL_MIN_HIDDEN = 512;

    /** bf16 GEMMs over fp32 activations, and nothing else in bf16. */
    public boolean mixed() {
        return bf16Matmul && !bf16;
    }

    /** The precision a compute path's GEMMs run in. */
    public torch.ScalarType matmulDtype() {
        return bf16Matmul ? torch.ScalarType.BFloat16 : torch.ScalarType.Float;
    }

    /** fp32 on the CPU: the reference path, used by every golden test. */
    public static Compute cpu() {
        Tensors.useCores(false);
        return CPU;
    }

    /** CUDA + bf16 when the GPU build of libtorch sees a device, else {@link #cpu()}. {@code TUNE4J_DEVICE=cpu} forces the CPU. */
    public static Compute auto() {
        if (cudaVisible()) return new Compute(true, true);
        Tensors.useCores(false);
        return CPU;
    }

    private static boolean cudaVisible() {
        Tensors.init();
        return !"cpu".equalsIgnoreCase(System.getenv("TUNE4J_DEVICE")) && torch.cuda_is_available();
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
        return (cuda ? "cuda" : "cpu") + "/" + (bf16 ? "bf16" : mixed() ? "bf16-matmul" : "fp32");
    }
}
