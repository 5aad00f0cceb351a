package dev.tune4j.quant;

import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.Linear;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;

/**
 * A model whose decoder projections are 4-bit weights (embeddings, norms and lm_head stay as they are, as
 * PEFT/bitsandbytes do): loaded from a bitsandbytes checkpoint as stored, or quantized in memory. Each forward rebuilds
 * a layer's weights from the codes; nothing dense is kept. Generation, evaluation, QLoRA and serving all load through here.
 */
public final class FourBit {
    private FourBit() {}

    /** What quantization saved: dense fp32 bytes of the projections before, compressed bytes after. */
    public record Sizes(long denseBytes, long quantizedBytes, int tensors) {
        public double ratio() {
            return (double) quantizedBytes / denseBytes;
        }
    }

    /** Any folder: a bitsandbytes 4-bit one through {@link #load}, a dense one as usual. */
    public static LlamaModel loadAny(ModelFolder f, Compute c, java.util.function.LongConsumer onLoaded) {
        return f.bitsandbytes4bit() ? load(f, c) : LlamaModel.load(f, c, onLoaded);
    }

    /** Loads a bitsandbytes 4-bit folder straight into a quantized model: the codes are never expanded to dense weights on load. */
    public static LlamaModel load(ModelFolder f, Compute c) {
        LlamaModel m = LlamaModel.load(f, c, b -> {}, ModelFolder::isProjectionWeight);
        for (var e : m.linears().entrySet()) {
            String name = e.getKey() + ".weight";
            e.getValue().quantize(new QuantizedWeight(BnbFormat.read(f.fileOf(name), name), m.compute));
        }
        return m;
    }

    /**
     * QLoRA from a dense folder: each projection is read from the mapping, quantized and dropped in turn, so the dense
     * model never exists at once (nor stays behind in the allocator as freed fp32 weights); on the bf16-matmul path a bf16
     * folder's embedding and head stay bf16 ({@link LlamaModel#embeddingsToBf16}).
     */
    public static Quantized loadQuantizing(ModelFolder f, Compute c, String quantType, int blocksize, boolean doubleQuant) {
        LlamaModel m = LlamaModel.load(f, c, b -> {}, ModelFolder::isProjectionWeight);
        try {
            Sizes sizes = quantizeEach(m, (module, l) -> {
                String name = module + ".weight";
                try (var scope = new org.bytedeco.javacpp.PointerScope()) { // one projection's fp32 copy at a time
                    return Quantizer.quantize(Tensors.toFloats(LlamaModel.read(f, name, org.bytedeco.pytorch.global.torch.ScalarType.Float)), f.info(name).shape(), quantType, blocksize, doubleQuant);
                }
            });
            if (LlamaModel.storesEmbeddingsBf16(f)) m.embeddingsToBf16();
            return new Quantized(m, sizes);
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    public record Quantized(LlamaModel model, Sizes sizes) {}

    /** Quantizes every dense projection of a loaded model in place (QLoRA from a dense folder). */
    public static Sizes quantize(LlamaModel m, String quantType, int blocksize, boolean doubleQuant) {
        return quantizeEach(m, (module, l) -> Quantizer.quantize(Tensors.toFloats(l.weight), Tensors.shape(l.weight), quantType, blocksize, doubleQuant));
    }

    /** Replaces every dense projection (by module name) with its quantized form, the weights coming from {@code quantize}. */
    private static Sizes quantizeEach(LlamaModel m, java.util.function.BiFunction<String, Linear, QuantState> quantize) {
        long dense = 0, packed = 0;
        int n = 0;
        for (var e : m.linears().entrySet()) {
            Linear l = e.getValue();
            if (l.quantized != null) continue;
            QuantState s = quantize.apply(e.getKey(), l);
            var w = new QuantizedWeight(s, m.compute);
            l.quantize(w);
            dense += 4L * s.numel();
            packed += w.bytes();
            n++;
        }
        return new Sizes(dense, packed, n);
    }
}
