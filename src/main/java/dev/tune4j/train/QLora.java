package dev.tune4j.train;

import dev.tune4j.model.Linear;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.quant.QuantState;
import dev.tune4j.quant.QuantizedWeight;
import dev.tune4j.quant.Quantizer;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.pytorch.Tensor;

/**
 * QLoRA's base: every projection of the decoder quantized to 4 bits (embeddings, norms and lm_head stay as they are, as
 * PEFT/bitsandbytes do). Each forward rebuilds a layer's weights from the codes; nothing dense is kept.
 */
public final class QLora {
    private QLora() {}

    /** What quantization saved: dense fp32 bytes of the projections before, compressed bytes after. */
    public record Sizes(long denseBytes, long quantizedBytes, int tensors) {
        public double ratio() {
            return (double) quantizedBytes / denseBytes;
        }
    }

    /** Loads a bitsandbytes 4-bit folder straight into a quantized model: the codes are never expanded to dense weights on load. */
    public static LlamaModel loadQuantized(dev.tune4j.hf.ModelFolder f, dev.tune4j.tensor.Compute c) {
        LlamaModel m = LlamaModel.load(f, c, b -> {}, dev.tune4j.hf.ModelFolder::isProjectionWeight);
        var linears = m.linears();
        for (var e : linears.entrySet()) {
            String name = e.getKey() + ".weight";
            QuantState s = dev.tune4j.quant.BnbFormat.read(f.fileOf(name), name);
            attach(e.getValue(), s, m);
        }
        return m;
    }

    private static long attach(Linear l, QuantState s, LlamaModel m) {
        QuantizedWeight w = new QuantizedWeight(s, m.compute);
        long[] shape = s.shape();
        l.quantize(new Linear.Quantized() {
            public Tensor dequantize() {
                return w.dequantize();
            }

            public long[] shape() {
                return shape;
            }

            public long bytes() {
                return w.bytes();
            }

            public void close() {
                w.close();
            }
        });
        return w.bytes();
    }

    public static Sizes quantize(LlamaModel m, String quantType, int blocksize, boolean doubleQuant) {
        long dense = 0, packed = 0;
        int n = 0;
        for (Linear l : m.linears().values()) {
            if (l.quantized != null) continue;
            long[] shape = Tensors.shape(l.weight);
            QuantState s = Quantizer.quantize(Tensors.toFloats(l.weight), shape, quantType, blocksize, doubleQuant);
            dense += 4L * s.numel();
            packed += attach(l, s, m);
            n++;
        }
        return new Sizes(dense, packed, n);
    }
}
