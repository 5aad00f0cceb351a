package dev.tune4j.eval;

import dev.tune4j.CliRun;
import dev.tune4j.Golden;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

/** Singular values of scaling·B·A from the factors: a constructed update with known values, a random one against a full SVD. */
class SpectrumTest {
    @Test
    void constructedUpdateHasTheSingularValuesWeBuiltIn() {
        int r = 4, in = 7, out = 6;
        float[] a = new float[r * in], b = new float[out * r];
        double[] s = {3, 2, 0.5, 0.25};
        int[] rows = {5, 0, 3, 1};
        for (int i = 0; i < r; i++) {
            a[i * in + (i + 2) % in] = 1;          // orthonormal rows of A
            b[rows[i] * r + i] = (float) s[i];      // B = U·diag(s) with orthonormal U
        }
        var m = Spectrum.of("x", a, b, r, 2.0);
        assertThat(m.sigma()).containsExactly(new double[]{6, 4, 1, 0.5}, offset(1e-9));
        assertThat(m.usedRank()).isEqualTo(4);
        assertThat(m.condition()).isCloseTo(12, offset(1e-9));
        double p0 = 6 / 11.5, p1 = 4 / 11.5, p2 = 1 / 11.5, p3 = 0.5 / 11.5;
        assertThat(m.effectiveRank()).isCloseTo(Math.exp(-(p0 * Math.log(p0) + p1 * Math.log(p1) + p2 * Math.log(p2) + p3 * Math.log(p3))), offset(1e-9));
        assertThat(m.warning()).isNull();
    }

    @Test
    void randomUpdateMatchesAFullSvd() {
        Compute.cpu();
        var rnd = new Random(3);
        int r = 8, in = 40, out = 30;
        float[] a = new float[r * in], b = new float[out * r];
        for (int i = 0; i < a.length; i++) a[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) rnd.nextGaussian();
        var m = Spectrum.of("x", a, b, r, 0.5);
        try (PointerScope s = new PointerScope()) {
            var full = Tensors.floats(b, out, r).to(torch.ScalarType.Double).matmul(Tensors.floats(a, r, in).to(torch.ScalarType.Double)).mul(new org.bytedeco.pytorch.Scalar(0.5));
            float[] want = Tensors.toFloats(torch.linalg_svdvals(full));
            for (int i = 0; i < r; i++) assertThat(m.sigma()[i]).isCloseTo(want[i], offset(1e-4 * want[0]));
        }
    }

    @Test
    void rankCollapseAndUnusedRankAreFlagged() {
        int r = 8, in = 10, out = 10;
        float[] a = new float[r * in], b = new float[out * r];
        for (int i = 0; i < r; i++) a[i * in + i] = 1;
        b[0] = 5; // a single direction
        var m = Spectrum.of("x", a, b, r, 1);
        assertThat(m.usedRank()).isEqualTo(1);
        assertThat(m.warning()).contains("rank collapse");
        Arrays.fill(b, 0);
        b[0] = 1;
        b[1 * r + 1] = 1; // two equal directions out of 8
        assertThat(Spectrum.of("y", a, b, r, 1).warning()).contains("r=8 but only 2 directions");
    }

    @Test
    void inspectAdapterPrintsTheTable() {
        CliRun run = CliRun.of("inspect", "--adapter", Golden.golden("lora/llama-tied/adapter").toString());
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.out()).contains("14 LoRA modules").contains("model.layers.1.mlp.down_proj").contains("eff.rank");
    }

    /** A DoRA update (m/‖W + s·B·A‖)·(W + s·B·A) − W is full rank and needs the base: refused by name, not misreported. */
    @Test
    void doraAdaptersAreRefusedByName() throws Exception {
        var dora = Golden.golden("dora/llama-untied/adapter");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Spectrum.ofFolder(dora))
                .isInstanceOf(dev.tune4j.hf.HfFormatException.class).hasMessageContaining("DoRA").hasMessageContaining("use_dora");
        CliRun run = CliRun.of("inspect", "--adapter", dora.toString());
        assertThat(run.code()).isEqualTo(2);
        assertThat(run.err()).contains("DoRA adapter").contains("full rank");
        try (var f = dev.tune4j.hf.ModelFolder.open(Golden.golden("models/llama-untied"));
             var m = dev.tune4j.model.LlamaModel.load(f, Compute.cpu());
             var a = dev.tune4j.peft.LoraAdapter.load(dora, m)) {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> Spectrum.of(a)).hasMessageContaining("DoRA");
        }
    }
}
