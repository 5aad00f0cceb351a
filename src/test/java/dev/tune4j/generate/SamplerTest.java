package dev.tune4j.generate;

import dev.tune4j.hf.ConfigPresets;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;

import static org.assertj.core.api.Assertions.*;

/** The sampling rules on hand-made logits, and seeding/stop rules on a small random model. */
class SamplerTest {
    static GenerationConfig cfg(double temperature, int topK, double topP, double penalty, long seed) {
        return new GenerationConfig(10, temperature, topK, topP, penalty, seed, List.of(), List.of());
    }

    @Test
    void greedyTakesTheArgmax() {
        assertThat(new Sampler(cfg(0, 0, 1, 1, 0)).next(new float[]{0.1f, 3f, 2.9f}, new long[0], 0, 0)).isEqualTo(1);
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        // token 1 (seen) drops from 3.0 to 1.5 < 2.9; a seen negative logit gets more negative
        assertThat(new Sampler(cfg(0, 0, 1, 2.0, 0)).next(new float[]{0.1f, 3f, 2.9f}, new long[]{1}, 1, 0)).isEqualTo(2);
        float[] neg = {-1f, -0.9f};
        new Sampler(cfg(0, 0, 1, 2.0, 0)).next(neg, new long[]{1, 1}, 2, 0);
        assertThat(neg[1]).isEqualTo(-1.8f);
        assertThat(neg[0]).isEqualTo(-1f);
    }

    @Test
    void topKKeepsOnlyTheKLikeliest() {
        var seen = new HashSet<Integer>();
        var s = new Sampler(cfg(5.0, 2, 1, 1, 1)); // hot temperature: without top-k all four would appear
        for (int i = 0; i < 300; i++) seen.add(s.next(new float[]{1f, 4f, 3f, 0f}, new long[0], 0, 0));
        assertThat(seen).containsExactlyInAnyOrder(1, 2);
    }

    @Test
    void topPKeepsTheSmallestNucleus() {
        // probabilities ≈ 0.665, 0.245, 0.090: p = 0.7 needs the first two, p = 0.5 only the first
        float[] logits = {2f, 1f, 0f};
        var seen = new HashSet<Integer>();
        var s = new Sampler(cfg(1.0, 0, 0.7, 1, 3));
        for (int i = 0; i < 300; i++) seen.add(s.next(logits.clone(), new long[0], 0, 0));
        assertThat(seen).containsExactlyInAnyOrder(0, 1);
        var only = new Sampler(cfg(1.0, 0, 0.5, 1, 3));
        for (int i = 0; i < 50; i++) assertThat(only.next(logits.clone(), new long[0], 0, 0)).isZero();
    }

    @Test
    void samplingFollowsTheDistribution() {
        var s = new Sampler(cfg(1.0, 0, 1, 1, 11));
        int ones = 0, n = 4000;
        for (int i = 0; i < n; i++) if (s.next(new float[]{0f, (float) Math.log(3)}, new long[0], 0, 0) == 1) ones++;
        assertThat(ones / (double) n).isCloseTo(0.75, within(0.03));
    }

    @Test
    void invalidSettingsAreRefused() {
        assertThatThrownBy(() -> cfg(-1, 0, 1, 1, 0)).hasMessageContaining("temperature");
        assertThatThrownBy(() -> cfg(1, 0, 0, 1, 0)).hasMessageContaining("top_p");
        assertThatThrownBy(() -> cfg(1, -3, 1, 1, 0)).hasMessageContaining("top_k");
    }

    @Test
    void sameSeedSameTokensAndEosStops() {
        try (LlamaModel m = LlamaModel.random(ConfigPresets.tiny(), 3, Compute.cpu())) {
            var c = new GenerationConfig(30, 1.0, 0, 0.95, 1.1, 42, List.of(), List.of());
            long[] a = Generator.generate(m, new long[]{1, 7}, c, null, null).tokens();
            long[] b = Generator.generate(m, new long[]{1, 7}, c, null, null).tokens();
            assertThat(a).hasSize(30).containsExactly(b);
            long[] other = Generator.generate(m, new long[]{1, 7}, new GenerationConfig(30, 1.0, 0, 0.95, 1.1, 43, List.of(), List.of()), null, null).tokens();
            assertThat(other).isNotEqualTo(a);
            int eos = (int) a[4];
            var stopped = Generator.generate(m, new long[]{1, 7}, c.withEos(List.of(eos)), null, null);
            assertThat(stopped.reason()).isEqualTo(Generator.StopReason.EOS);
            assertThat(stopped.tokens()[stopped.tokens().length - 1]).isEqualTo(eos);
            assertThat(stopped.tokens().length).isLessThanOrEqualTo(5);
        }
    }

    @Test
    void stopStringCutsTheTextEvenWhenItSpansTokens() {
        try (LlamaModel m = LlamaModel.random(ConfigPresets.tiny(), 3, Compute.cpu())) {
            java.util.function.Function<long[], String> spell = ids -> java.util.Arrays.stream(ids).mapToObj(i -> "<" + i + ">").collect(java.util.stream.Collectors.joining());
            var free = Generator.generate(m, new long[]{1}, new GenerationConfig(20, 0, 0, 1, 1, 0, List.of(), List.of()), spell, null);
            long[] t = free.tokens();
            String stop = t[2] + "><" + t[3]; // the end of the third token and the start of the fourth
            int at = free.text().indexOf(stop);
            var r = Generator.generate(m, new long[]{1}, new GenerationConfig(20, 0, 0, 1, 1, 0, List.of(), List.of(stop)), spell, null);
            assertThat(r.reason()).isEqualTo(Generator.StopReason.STOP_STRING);
            assertThat(r.text()).isEqualTo(free.text().substring(0, at));
            int needed = 1;
            while (!spell.apply(java.util.Arrays.copyOf(t, needed)).contains(stop)) needed++;
            assertThat(r.tokens()).containsExactly(java.util.Arrays.copyOf(t, needed));
        }
    }

    @Test
    void presenceAndFrequencyPenaltiesAreOpenAisOverTheGeneratedTokensOnly() {
        // logit − count·frequency − [count > 0]·presence; token 0 sits in the prompt only, so it is not penalized
        var s = new Sampler(new Sampling(5, 0, 1, 0, null, List.of(), 1, 0.5, 0.75, false, List.of()));
        float[] logits = {4f, 3f, 2.9f, 2.0f};
        long[] seen = {0, 0, 1, 1, 2};   // prompt {0, 0}; generated {1, 1, 2}
        s.next(logits, seen, seen.length, 2);
        assertThat(logits).containsExactly(4f, 3f - 2 * 0.75f - 0.5f, 2.9f - 0.75f - 0.5f, 2.0f);
    }
}
