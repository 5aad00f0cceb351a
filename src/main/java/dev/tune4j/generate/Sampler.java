package dev.tune4j.generate;

import java.util.Arrays;
import java.util.Random;

/**
 * Picks the next token from one row of logits, in transformers' order: repetition penalty → (greedy argmax) or
 * temperature → top-k → top-p → softmax → draw. Plain Java on a float[]: the row is small next to a forward pass.
 */
final class Sampler {
    private final GenerationConfig cfg;
    private final Random random;

    Sampler(GenerationConfig cfg) {
        this.cfg = cfg;
        this.random = new Random(cfg.seed());
    }

    int next(float[] logits, long[] seen, int seenCount) {
        if (cfg.repetitionPenalty() != 1.0) {
            boolean[] done = new boolean[logits.length];
            for (int i = 0; i < seenCount; i++) {
                int t = (int) seen[i];
                if (t < 0 || t >= logits.length || done[t]) continue;
                done[t] = true;
                logits[t] = (float) (logits[t] < 0 ? logits[t] * cfg.repetitionPenalty() : logits[t] / cfg.repetitionPenalty());
            }
        }
        if (cfg.greedyDecoding()) return argmax(logits);
        double[] z = new double[logits.length];
        for (int i = 0; i < z.length; i++) z[i] = logits[i] / cfg.temperature();
        Integer[] order = null;
        if (cfg.topK() > 0 && cfg.topK() < z.length) {
            order = sortedDesc(z);
            double kth = z[order[cfg.topK() - 1]];
            for (int i = 0; i < z.length; i++) if (z[i] < kth) z[i] = Double.NEGATIVE_INFINITY;
        }
        double[] p = softmax(z);
        if (cfg.topP() < 1.0) {
            if (order == null) order = sortedDesc(z);
            double cum = 0;
            boolean cut = false;
            for (Integer i : order) {
                if (cut) p[i] = 0;
                cum += p[i];
                if (cum >= cfg.topP()) cut = true; // this token completes the nucleus; the rest go
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
