package dev.tune4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.Golden;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

/** AdamW, gradient clipping and LR schedules equal torch 1.13 / transformers 4.44 (golden/optim, golden/sched). */
class GoldenOptimTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static void assertRelClose(String what, float[] got, float[] want, double rel) {
        assertThat(got).hasSameSizeAs(want);
        for (int i = 0; i < got.length; i++)
            assertThat((double) got[i]).as(what + "[" + i + "]").isCloseTo(want[i], offset(rel * Math.max(1e-6, Math.abs(want[i]))));
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void adamwFiveStepsWithTwoWeightDecayGroups(boolean offload) throws Exception {
        JsonNode meta = JSON.readTree(Golden.golden("optim/adamw.json").toFile());
        Compute.cpu();
        try (Safetensors g = Safetensors.open(Golden.golden("optim/adamw.safetensors"))) {
            var params = new ArrayList<AdamW.Param>();
            for (JsonNode group : meta.get("param_groups")) {
                double wd = group.get("weight_decay").asDouble();
                for (JsonNode p : group.get("params")) {
                    String n = p.asText();
                    float[] init = g.floats(n + ".init");
                    long[] shape = g.info(n + ".init").shape();
                    Tensor t = Tensors.escape(() -> Tensors.floats(init, shape).set_requires_grad(true));
                    params.add(new AdamW.Param(t, wd));
                }
            }
            JsonNode betas = meta.get("betas");
            try (AdamW opt = new AdamW(params, betas.get(0).asDouble(), betas.get(1).asDouble(), meta.get("eps").asDouble(), offload)) {
                for (int step = 1; step <= meta.get("steps").asInt(); step++) {
                    for (int i = 0; i < params.size(); i++) {
                        String n = "param" + i + ".grad.step" + step;
                        float[] grad = g.floats(n);
                        try (PointerScope s = new PointerScope()) {
                            params.get(i).tensor().mutable_grad().put(Tensors.floats(grad, g.info(n).shape()));
                        }
                    }
                    opt.step(meta.get("lr").asDouble());
                    opt.zeroGrad();
                    for (int i = 0; i < params.size(); i++) {
                        String p = "param" + i;
                        assertRelClose(p + " after step " + step, Tensors.toFloats(params.get(i).tensor()), g.floats(p + ".after.step" + step), 1e-6);
                        assertRelClose(p + " exp_avg " + step, Tensors.toFloats(opt.expAvg().get(i)), g.floats(p + ".exp_avg.step" + step), 1e-6);
                        assertRelClose(p + " exp_avg_sq " + step, Tensors.toFloats(opt.expAvgSq().get(i)), g.floats(p + ".exp_avg_sq.step" + step), 1e-6);
                        assertThat(params.get(i).tensor().grad().defined()).as("zeroGrad drops the gradient").isFalse();
                    }
                }
            }
            params.forEach(p -> p.tensor().close());
        }
    }

    @Test
    void clipGradNormClipsOnlyAboveMax() throws Exception {
        JsonNode meta = JSON.readTree(Golden.golden("optim/clip_grad_norm.json").toFile());
        Compute.cpu();
        try (Safetensors g = Safetensors.open(Golden.golden("optim/clip_grad_norm.safetensors"))) {
            for (String c : List.of("clipped", "unclipped")) {
                var params = new ArrayList<Tensor>();
                for (int i = 0; i < 3; i++) {
                    String n = c + ".grad" + i + ".before";
                    long[] shape = g.info(n).shape();
                    float[] v = g.floats(n);
                    Tensor p = Tensors.escape(() -> org.bytedeco.pytorch.global.torch.zeros(shape).set_requires_grad(true));
                    try (PointerScope s = new PointerScope()) {
                        p.mutable_grad().put(Tensors.floats(v, shape));
                    }
                    params.add(p);
                }
                double norm = GradClip.clip(params, meta.get("max_norm").asDouble());
                assertThat(norm).as(c + " total norm").isCloseTo(meta.get("cases").get(c).get("total_norm").asDouble(), offset(1e-5));
                for (int i = 0; i < 3; i++)
                    assertRelClose(c + " grad" + i, Tensors.toFloats(params.get(i).grad()), g.floats(c + ".grad" + i + ".after"), 1e-6);
                params.forEach(Tensor::close);
            }
        }
    }

    @Test
    void schedulesEqualTransformers() throws Exception {
        JsonNode d = JSON.readTree(Golden.golden("sched/schedules.json").toFile());
        double base = d.get("base_lr").asDouble();
        int total = d.get("num_training_steps").asInt(), warmup = d.get("num_warmup_steps").asInt();
        var ours = java.util.Map.of("linear", LrSchedule.of("linear", base, warmup, total),
                "cosine", LrSchedule.of("cosine", base, warmup, total),
                "cosine_with_hard_restarts", new LrSchedule("cosine_with_restarts", base, warmup, total, 2),
                "constant_with_warmup", LrSchedule.of("constant_with_warmup", base, warmup, total));
        for (var e : ours.entrySet()) {
            JsonNode want = d.get("schedules").get(e.getKey());
            for (int i = 0; i < total; i++)
                assertThat(e.getValue().lr(i)).as(e.getKey() + " step " + i).isCloseTo(want.get("lr_per_step").get(i).asDouble(), offset(1e-12 * base + 1e-20));
            assertThat(e.getValue().lr(total)).as(e.getKey() + " after last").isCloseTo(want.get("lr_after_last_step").asDouble(), offset(1e-12 * base + 1e-20));
        }
        assertThat(LrSchedule.warmupFromRatio(0.03, 1000)).isEqualTo(30);
        assertThat(LrSchedule.warmupFromRatio(0.1, 15)).isEqualTo(2);
    }
}
