package dev.tune4j.peft;

import dev.tune4j.Golden;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Adapters by name on a projection: switching one off gives the base, and per-row routing equals running each row alone. */
class AdapterSeamTest {
    @Test
    void disablingByNameGivesTheBaseAndRoutingMixesAdaptersPerRow() throws Exception {
        var dir = Golden.golden("lora/llama-untied");
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/llama-untied"));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors g = Safetensors.open(dir.resolve("logits.safetensors"));
             Safetensors base = Safetensors.open(Golden.golden("cases/llama-untied/forward.safetensors"));
             LoraAdapter a = LoraAdapter.load(dir.resolve("adapter"), m);
             LoraAdapter b = LoraAdapter.load(Golden.golden("lora/llama-untied-rslora/adapter"), m, "other");
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            assertThat(a.name).isEqualTo("default");
            long[] shape = g.info("input_ids").shape();
            Tensor ids = Tensors.longs(g.longs("input_ids"), shape);
            b.enable(false);
            assertClose("only 'default' on", Tensors.toFloats(m.logits(ids, null, null)), g.floats("logits"), 1e-4);
            a.enable(false);
            assertClose("both off = base", Tensors.toFloats(m.logits(ids, null, null)), base.floats("logits"), 1e-4);
            assertThat(m.enableAdapter("default", true)).isTrue();
            assertThat(m.enableAdapter("missing", true)).isFalse();
            b.enable(true);
            float[] both = Tensors.toFloats(m.logits(ids, null, null));
            // routing: row 0 uses 'default' only, row 1 the base alone; 'other' is routed to no row
            m.routing.set(new String[]{"default", null});
            float[] routed = Tensors.toFloats(m.logits(ids, null, null));
            m.routing.clear();
            int half = routed.length / 2;
            assertClose("row 0 routed to 'default'", Arrays.copyOf(routed, half), Arrays.copyOf(g.floats("logits"), half), 1e-4);
            assertClose("row 1 routed to none", Arrays.copyOfRange(routed, half, routed.length), Arrays.copyOfRange(base.floats("logits"), half, routed.length), 1e-4);
            assertThat(Arrays.equals(both, g.floats("logits"))).as("with both on, 'other' changes the logits").isFalse();
            m.routing.set(new String[]{"default"});
            assertThatThrownBy(() -> m.logits(ids, null, null)).hasMessageContaining("routing names 1 rows, the batch has 2");
            m.routing.clear();
        }
    }
}
