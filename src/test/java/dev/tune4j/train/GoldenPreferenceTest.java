package dev.tune4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.data.PreferencePair;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.tune4j.TensorAssert.assertClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

/**
 * golden/dpo: TRL's preference losses and metrics, computed by tune4j's engine on the golden PEFT policy (the lora/
 * adapter) with the reference = the same model with the adapter off: the batch layout, every loss type, SimPO, ORPO,
 * the metrics under TRL's names, and the LoRA gradients of the sigmoid and ORPO losses.
 */
class GoldenPreferenceTest {
    @ParameterizedTest
    @ValueSource(strings = {"llama-untied", "qwen2-tied"})
    void lossesMetricsAndGradientsEqualTrl(String name) throws Exception {
        var dir = Golden.golden("dpo/" + name);
        var mapper = new ObjectMapper();
        JsonNode dpo = mapper.readTree(dir.resolve("dpo.json").toFile()), simpo = mapper.readTree(dir.resolve("simpo.json").toFile()),
                orpo = mapper.readTree(dir.resolve("orpo.json").toFile());
        var pairs = new ArrayList<PreferencePair>();
        for (JsonNode p : dpo.get("pairs")) pairs.add(new PreferencePair(longs(p.get("prompt_ids")), longs(p.get("chosen_ids")), longs(p.get("rejected_ids"))));
        int[] all = {0, 1, 2};
        long pad = dpo.get("pad_token_id").asLong();
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/" + name));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             Safetensors batch = Safetensors.open(dir.resolve("batch.safetensors"));
             Safetensors gradsDpo = Safetensors.open(dir.resolve("grads_dpo_sigmoid.safetensors"));
             Safetensors gradsOrpo = Safetensors.open(dir.resolve("grads_orpo.safetensors"));
             LoraAdapter lora = LoraAdapter.load(Golden.golden("lora/" + name + "/adapter"), m)) {
            var dpoBatches = PairBatches.pairs(pairs, 3, pad, 0, false, 0);
            try (PointerScope s = new PointerScope()) { // TRL's layout: chosen rows then rejected rows, right-padded
                Micro mb = dpoBatches.assemble(all, m.compute);
                assertThat(Tensors.toLongs(mb.batch().ids())).containsExactly(batch.longs("input_ids"));
                assertThat(Tensors.toLongs(mb.batch().attentionMask())).containsExactly(batch.longs("attention_mask"));
                assertThat(mb.labels()).containsExactly(batch.longs("labels"));
            }
            var reference = PreferenceLoss.switched(m, () -> lora.enable(false), () -> lora.enable(true), 5);
            // every DPO loss type
            dpo.get("losses").properties().forEach(e -> {
                JsonNode l = e.getValue();
                var cfg = new PreferenceLoss.Config(PreferenceLoss.Type.parse(l.get("loss_type").asText()), l.get("beta").asDouble(), l.get("label_smoothing").asDouble(), 0, 0);
                var r = step(m, new PreferenceLoss(cfg, reference), dpoBatches, all);
                assertThat(r.loss()).as(name + " " + e.getKey()).isCloseTo(l.get("loss").asDouble(), offset(1e-4));
                if (e.getKey().equals("sigmoid_beta0.1")) checkGrads(name + " dpo sigmoid", lora, gradsDpo);
                lora.parameters().forEach(p -> p.grad().zero_());
            });
            // metrics at beta 0.1 and 0.5
            for (String beta : List.of("0.1", "0.5")) {
                var cfg = new PreferenceLoss.Config(PreferenceLoss.Type.SIGMOID, Double.parseDouble(beta), 0, 0, 0);
                var r = step(m, new PreferenceLoss(cfg, reference), dpoBatches, all);
                assertMetrics(name + " dpo beta " + beta, r.metrics(), dpo.get("metrics").get("beta" + beta), List.of());
                lora.parameters().forEach(p -> p.grad().zero_());
            }
            // SimPO, pure (cpo_alpha 0) and with TRL's default cpo_alpha 1
            double b = simpo.get("beta").asDouble(), gamma = simpo.get("simpo_gamma").asDouble();
            var simpoR = step(m, new PreferenceLoss(new PreferenceLoss.Config(PreferenceLoss.Type.SIMPO, b, 0, gamma, 0), null), dpoBatches, all);
            assertThat(simpoR.loss()).as(name + " simpo").isCloseTo(simpo.get("loss").asDouble(), offset(1e-4));
            assertMetrics(name + " simpo", simpoR.metrics(), simpo.get("metrics"), List.of("logits/chosen", "logits/rejected"));
            var cpo = step(m, new PreferenceLoss(new PreferenceLoss.Config(PreferenceLoss.Type.SIMPO, b, 0, gamma, 1.0), null), dpoBatches, all);
            assertThat(cpo.loss()).as(name + " simpo + cpo nll").isCloseTo(simpo.get("loss_with_cpo_alpha_1.0").asDouble(), offset(1e-4));
            lora.parameters().forEach(p -> p.grad().zero_());
            // ORPO: NLL over the chosen rows' prompt and completion, odds ratio on completion averages
            var orpoBatches = PairBatches.pairs(pairs, 3, pad, 0, true, 0);
            var orpoR = step(m, new PreferenceLoss(new PreferenceLoss.Config(PreferenceLoss.Type.ORPO, orpo.get("beta").asDouble(), 0, 0, 0), null), orpoBatches, all);
            assertThat(orpoR.loss()).as(name + " orpo").isCloseTo(orpo.get("loss").asDouble(), offset(1e-4));
            assertMetrics(name + " orpo", orpoR.metrics(), orpo.get("metrics"), List.of("logits/chosen", "logits/rejected"));
            checkGrads(name + " orpo", lora, gradsOrpo);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-untied", "qwen2-tied"})
    void ktoLossAndMetricsEqualTrl(String name) throws Exception {
        var dir = Golden.golden("dpo/" + name);
        JsonNode kto = new ObjectMapper().readTree(dir.resolve("kto.json").toFile());
        var examples = new ArrayList<dev.tune4j.data.KtoExample>();
        var desirable = new boolean[kto.get("examples").size()];
        for (JsonNode e : kto.get("examples")) {
            desirable[examples.size()] = e.get("label").asBoolean();
            examples.add(new dev.tune4j.data.KtoExample(longs(e.get("prompt_ids")), longs(e.get("completion_ids")), e.get("label").asBoolean()));
        }
        var batches = PairBatches.kto(examples, examples.size(), kto.get("pad_token_id").asLong(), 0, 0);
        int[] all = java.util.stream.IntStream.range(0, examples.size()).toArray();
        try (ModelFolder f = ModelFolder.open(Golden.golden("models/" + name));
             LlamaModel m = LlamaModel.load(f, Compute.cpu());
             LoraAdapter lora = LoraAdapter.load(Golden.golden("lora/" + name + "/adapter"), m)) {
            try (PointerScope s = new PointerScope()) { // the KL rows pair each prompt with the previous completion, as TRL
                Micro mb = batches.assemble(all, m.compute);
                for (int i = 0; i < all.length; i++) assertThat(mb.rowIds()[all.length + i]).isEqualTo(i);
            }
            var reference = PreferenceLoss.switched(m, () -> lora.enable(false), () -> lora.enable(true), 7);
            try (PointerScope s = new PointerScope()) {
                double[] ref = reference.logps(batches.assemble(all, m.compute));
                for (int i = 0; i < all.length; i++) {
                    assertThat(ref[i]).as("ref logps " + i).isCloseTo(kto.get("logps").get("ref").get(i).asDouble(), offset(1e-4));
                    assertThat(ref[all.length + i]).as("KL ref logps " + i).isCloseTo(kto.get("logps").get("KL_ref").get(i).asDouble(), offset(1e-4));
                }
            }
            var r = step(m, new KtoLoss(0.1, 1, 1, desirable, reference), batches, all);
            assertThat(r.loss()).as(name + " kto").isCloseTo(kto.get("loss").asDouble(), offset(1e-4));
            assertMetrics(name + " kto", r.metrics(), kto.get("metrics"), List.of("entropy"));
        }
    }

    private static Backprop.Result step(LlamaModel m, Objective loss, PairBatches batches, int[] rows) {
        try (PointerScope s = new PointerScope()) {
            return Backprop.run(m, batches.assemble(rows, m.compute), loss, 1.0, false, 5);
        }
    }
    /** TRL's logits/* for SimPO and ORPO average every position including padding; tune4j's head sees completion positions only. */
    private static void assertMetrics(String what, Map<String, Double> got, JsonNode want, List<String> skip) {
        want.properties().forEach(e -> {
            if (skip.contains(e.getKey())) return;
            assertThat(got).as(what).containsKey(e.getKey());
            assertThat(got.get(e.getKey())).as(what + " " + e.getKey()).isCloseTo(e.getValue().asDouble(), offset(1e-4 + 1e-5 * Math.abs(e.getValue().asDouble())));
        });
    }

    private static void checkGrads(String what, LoraAdapter lora, Safetensors grads) {
        int checked = 0;
        for (var e : lora.namedParameters().entrySet()) {
            float[] want = grads.floats(e.getKey());
            double maxAbs = 0;
            for (float w : want) maxAbs = Math.max(maxAbs, Math.abs(w));
            assertClose(what + " grad " + e.getKey(), Tensors.toFloats(e.getValue().grad()), want, 1e-5 + 1e-4 * maxAbs);
            checked++;
        }
        assertThat(checked).isEqualTo(grads.tensors().size());
    }

    private static long[] longs(JsonNode a) {
        long[] v = new long[a.size()];
        for (int i = 0; i < v.length; i++) v[i] = a.get(i).asLong();
        return v;
    }
}
