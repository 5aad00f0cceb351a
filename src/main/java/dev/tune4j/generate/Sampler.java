package dev.tune4j.generate;

import java.util.Arrays;
import java.util.Random;

/**
 * Picks the next token from one row of logits, in transformers' order: repetition penalty → presence/frequency penalties → (greedy argmax) or
 * temperature → top-k → top-p → softmax → draw. Plain Java on a float[]: the row is small next to a forward pass.
 */
final class Sampler {
    private final double temperature, topP, repetitionPenalty, presencePenalty, frequencyPenalty;
    private final int topK;
    private final Random random;

    Sampler(GenerationConfig c) {
        this(c.temperature(), c.topK(), c.topP(), c.repetitionPenalty(), 0, 0, new Random(c.seed()));
    }

    Sampler(Sampling s) {
        this(s.temperature(), s.topK(), s.topP(), s.repetitionPenalty(), s.presencePenalty(), s.frequencyPenalty(),
                s.seed() == null ? new Random() : new Random(s.seed()));
    }

    private Sampler(double temperature, int topK, double topP, double repetitionPenalty, double presence, double frequency, Random random) {
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.repetitionPenalty = repetitionPenalty;
        this.presencePenalty = presence;
        this.frequencyPenalty = frequency;
        this.random = random;
    }

    /**
     * @param seen        prompt then generated ids; the first {@code seenCount} count
     * @param promptCount how many of them are the prompt (presence and frequency penalties look at the generated ones only)
     */
    int next(float[] logits, long[] seen, int seenCount, int promptCount) {
        if (repetitionPenalty != 1.0) {
            boolean[] done = new boolean[logits.length];
            for (int i = 0; i < seenCount; i++) {
                int t = (int) seen[i];
                if (t < 0 || t >= logits.length || done[t]) continue;
                done[t] = true;
                logits[t] = (float) (logits[t] < 0 ? logits[t] * repetitionPenalty : logits[t] / repetitionPenalty);
            }
        }
        if (presencePenalty != 0 || frequencyPenalty != 0) { // OpenAI: logit − count·frequency − [count > 0]·presence
            var counts = new java.util.HashMap<Integer, Integer>();
            for (int i = promptCount; i < seenCount; i++) if (seen[i] >= 0 && seen[i] < logits.length) counts.merge((int) seen[i], 1, Integer::sum);
            counts.forEach((t, n) -> logits[t] -= (float) (n * frequencyPenalty + presencePenalty));
        }
        if (temperature == 0) return argmax(logits);
        double[] z = new double[logits.length];
        for (int i = 0; i < z.length; i++) z[i] = logits[i] / temperature;
        Integer[] order = null;
        if (topK > 0 && topK < z.length) {
            order = sortedDesc(z);
            double kth = z[order[topK - 1]];
            for (int i = 0; i < z.length; i++) if (z[i] < kth) z[i] = Double.NEGATIVE_INFINITY;
        }
        double[] p = softmax(z);
        if (topP < 1.0) {
            if (order == null) order = sortedDesc(z);
            double cum = 0;
            boolean cut = false;
            for (Integer i : order) {
                if (cut) p[i] = 0;
                cum += p[i];
                if (cum >= topP) cut = true; // this token completes the nucleus; the rest go
            }
            double s = 0;
            for (double x : p) s += x;
            for (int i = 0; i < p.length; i++) p[i] /= s;
        }
        double r = random.nextDouble(), acc = 0;
        int last = 0;
        for (int i = 0; i < p.length; i++) {
            if (p[i] == 0) continue;
            acc += p[i];
            last = i;
            if (r < acc) return i;
        }
        return last;
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    private static Integer[] sortedDesc(double[] z) {
        Integer[] idx = new Integer[z.length];
        for (int i = 0; i < idx.length; i++) idx[i] = i;
        Arrays.sort(idx, (a, b) -> Double.compare(z[b], z[a]));
        return idx;
    }

    private static double[] softmax(double[] z) {
        double max = Double.NEGATIVE_INFINITY;
        for (double x : z) max = Math.max(max, x);
        double[] p = new double[z.length];
        double s = 0;
        for (int i = 0; i < z.length; i++) s += p[i] = Math.exp(z[i] - max);
        for (int i = 0; i < z.length; i++) p[i] /= s;
        return p;
    }
}
