package dev.tune4j.quant;

import dev.tune4j.EmbeddedModel;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.Linear;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** QLoRA's load-time quantization (one projection at a time, no dense model in between) gives the same 4-bit model. */
class LoadQuantizingTest {
    @Test
    void quantizingWhileLoadingEqualsQuantizingTheLoadedModel() throws Exception {
        try (var f = ModelFolder.open(EmbeddedModel.stories260k());
             LlamaModel a = FourBit.loadQuantizing(f, Compute.cpu(), "nf4", 64, true).model();
             LlamaModel b = LlamaModel.load(f, Compute.cpu())) {
            var sizes = FourBit.quantize(b, "nf4", 64, true);
            assertThat(sizes.tensors()).isEqualTo(a.linears().size());
            try (var s = new PointerScope()) {
                for (var e : a.linears().entrySet()) {
                    Linear la = e.getValue(), lb = b.linears().get(e.getKey());
                    assertThat(la.quantized).as(e.getKey()).isInstanceOf(QuantizedWeight.class);
                    assertThat(la.quantized.bytes()).isEqualTo(lb.quantized.bytes());
                    assertThat(la.quantized.dequantize().equal(lb.quantized.dequantize())).as(e.getKey()).isTrue();
                }
                assertThat(a.embed_tokens.equal(b.embed_tokens)).isTrue();
            }
        }
    }
}
