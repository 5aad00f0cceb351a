package dev.tune4j.model;

import dev.tune4j.hf.DType;
import dev.tune4j.hf.HfFormatException;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * A frozen projection kept in bf16: half the bytes of fp32. On the bf16-matmul path ({@link Compute#mixed}) the GEMM uses
 * it as stored (a folder in another dtype is rounded once, at load, as autocast rounds per use). On the fp32 path it is
 * upcast for each use (exact for a bf16 folder, so every result equals the fp32 path's); worth it there only where each
 * upcast lives briefly: with gradient checkpointing a layer's upcasts are freed with the layer, without it autograd would
 * keep every upcast to the end of the backward pass.
 */
public final class Bf16Weight implements Linear.Quantized {
    private final Tensor stored; // (out, in) bf16
    private final Compute compute;

    private Bf16Weight(Tensor stored, Compute compute) {
        this.stored = stored;
        this.compute = compute;
    }

    /**
     * The folder's model with every decoder projection kept in bf16: on the bf16-matmul path whatever the folder's dtype,
     * on the fp32 CPU path where the folder stores bf16; on the bf16-matmul path a bf16 folder's embedding and head are
     * kept bf16 as well ({@link LlamaModel#holdEmbeddingsBf16}); norms as usual. Any other folder or compute path loads
     * as {@link LlamaModel#load} does.
     *
     * @return the model and how many projection bytes stayed bf16 (0 when none did)
     */
    public static Loaded load(ModelFolder f, Compute c, java.util.function.LongConsumer onLoaded) {
        // a bf16 folder's embedding (and untied head) stay bf16 too on the bf16-matmul path: exact, and half the bytes
        String embedding = "model.embed_tokens.weight", head = "lm_head.weight";
        boolean tied = f.config().tieWordEmbeddings();
        boolean bf16Embeddings = c.mixed() && LlamaModel.storesEmbeddingsBf16(f);
        java.util.function.Predicate<String> kept = name -> !c.cuda() && !c.bf16() && ModelFolder.isProjectionWeight(name)
                && (c.mixed() || f.info(name).dtype() == DType.BF16);
        LlamaModel m = LlamaModel.load(f, c, onLoaded, name -> kept.test(name) || bf16Embeddings && (name.equals(embedding) || name.equals(head)));
        long bytes = 0;
        try {
            for (var e : m.linears().entrySet()) {
                String name = e.getKey() + ".weight";
                if (!kept.test(name)) continue;
                Tensor t = copy(f, name, onLoaded);
                e.getValue().quantize(new Bf16Weight(t, c));
                bytes += t.numel() * 2;
            }
            if (bf16Embeddings) {
                Tensor e = copy(f, embedding, onLoaded), h = null;
                try {
                    if (!tied) h = copy(f, head, onLoaded);
                } catch (RuntimeException ex) {
                    e.close();
                    throw ex;
                }
                m.holdEmbeddingsBf16(e, h);
            }
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
        return new Loaded(m, bytes);
    }

    /** One stored tensor copied from the mapping into a bf16 native tensor (checked for non-finite values on the way). */
    private static Tensor copy(ModelFolder f, String name, java.util.function.LongConsumer onLoaded) {
        Tensor t = Tensors.escape(() -> LlamaModel.read(f, name, torch.ScalarType.BFloat16));
        onLoaded.accept(f.info(name).byteSize());
        return t;
    }

    public record Loaded(LlamaModel model, long bf16Bytes) {}

    @Override
    public Tensor dequantize() {
        return stored.to(compute.dtype());
    }

    @Override
    public Tensor dequantize(torch.ScalarType dtype) {
        return dtype == torch.ScalarType.BFloat16 ? stored : stored.to(dtype);
    }

    /**
     * Keeps every frozen dense projection of a model in bf16 (a model built in memory, e.g. random weights for a
     * benchmark, standing for a bf16 folder): the bf16-matmul path's form of {@link #load}, the embedding and head included.
     *
     * @return the bf16 bytes now held
     */
    public static long keep(LlamaModel m) {
        long bytes = 0;
        for (Linear l : m.linears().values()) {
            if (l.weight == null || l.weight.requires_grad() || l.weight.numel() == 0) continue;
            Tensor t = Tensors.escape(() -> l.weight.to(torch.ScalarType.BFloat16));
            l.quantize(new Bf16Weight(t, m.compute));
            bytes += t.numel() * 2;
        }
        m.embeddingsToBf16();
        return bytes;
    }

    @Override
    public long[] shape() {
        return Tensors.shape(stored);
    }

    @Override
    public long bytes() {
        return stored.numel() * 2;
    }

    @Override
    public void close() {
        stored.close();
    }
}
