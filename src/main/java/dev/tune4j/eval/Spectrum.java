package dev.tune4j.eval;

import dev.tune4j.hf.UserError;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.tensor.Tensors;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Singular values of each LoRA update ΔW = scaling·B·A, from the small factors only: with G_A = A·Aᵀ and G_B = Bᵀ·B
 * (both r × r), σ(ΔW)² are the eigenvalues of G_A^½ · G_B · G_A^½. The out × in matrix is never formed.
 *
 * <p>DoRA adapters are refused: their update (m/‖W + s·B·A‖_row)[:,None]·(W + s·B·A) − W rescales every row of W, so it
 * has full rank and depends on the base weights; the spectrum of s·B·A alone would describe only its direction part.
 */
public final class Spectrum {
    private Spectrum() {}

    /**
     * @param sigma         singular values, largest first
     * @param effectiveRank exp of the entropy of the normalised singular values (Roy & Vetterli 2007)
     * @param usedRank      singular values above 1% of the largest
     * @param top1Energy    share of Σσ² in the largest singular value
     * @param condition     σ_max / σ_min over the values above 1% of σ_max
     */
    public record Module(String name, int r, double[] sigma, double effectiveRank, int usedRank, double top1Energy, double condition) {
        /** A warning for the report, or null: rank collapse, or a rank far larger than the update uses. */
        public String warning() {
            if (sigma.length == 0 || sigma[0] == 0) return "zero update (B is still zero?)";
            if (top1Energy > 0.9 && r > 1) return String.format("rank collapse: %.0f%% of the update in one direction", 100 * top1Energy);
            if (usedRank * 2 <= r) return "r=" + r + " but only " + usedRank + " directions above 1% of the largest: a smaller r would do";
            return null;
        }
    }

    public static List<Module> of(LoraAdapter adapter) {
        if (adapter.config.useDora()) throw new UserError(doraRefusal("this adapter"));
        var out = new ArrayList<Module>();
        try (var bar = dev.tune4j.train.StepProgress.phase("adapter spectrum", adapter.modules().size(), " modules")) {
            adapter.modules().forEach((name, l) -> {
                out.add(of(name, Tensors.toFloats(l.lora_A), Tensors.toFloats(l.lora_B), (int) l.r(), l.scaling));
                bar.step();
            });
        }
        return out;
    }

    /** The spectrum of every module of a PEFT adapter folder, read from its files (no base model needed). */
    public static List<Module> ofFolder(java.nio.file.Path dir) throws java.io.IOException {
        var cfgFile = dir.resolve("adapter_config.json");
        if (!java.nio.file.Files.exists(cfgFile)) throw new dev.tune4j.hf.HfFormatException(dir, "no adapter_config.json (not a PEFT adapter folder)");
        var c = new com.fasterxml.jackson.databind.ObjectMapper().readTree(cfgFile.toFile());
        if (c.path("use_dora").asBoolean(false)) throw new dev.tune4j.hf.HfFormatException(cfgFile, doraRefusal(dir.toString()));
        int r = c.path("r").asInt(8);
        double alpha = c.path("lora_alpha").asDouble(8);
        double scaling = c.path("use_rslora").asBoolean(false) ? alpha / Math.sqrt(r) : alpha / r;
        var out = new ArrayList<Module>();
        try (var st = dev.tune4j.hf.Safetensors.open(dir.resolve("adapter_model.safetensors"))) {
            for (var t : st.tensors()) {
                String n = t.name();
                if (n.endsWith(LoraAdapter.MAGNITUDE))
                    throw new dev.tune4j.hf.HfFormatException(dir.resolve("adapter_model.safetensors"), "tensor '" + n + "' is a DoRA magnitude vector: " + doraRefusal(dir.toString()));
                if (!n.endsWith(".lora_A.weight")) continue;
                String module = n.substring(LoraAdapter.KEY_PREFIX.length(), n.length() - ".lora_A.weight".length());
                String bName = LoraAdapter.KEY_PREFIX + module + ".lora_B.weight";
                int rank = (int) t.shape()[0];
                out.add(of(module, st.floats(n), st.floats(bName), rank, scaling));
            }
        }
        return out;
    }

    static String doraRefusal(String what) {
        return what + " is a DoRA adapter (use_dora: true): its update (m/‖W + s·B·A‖_row)·(W + s·B·A) − W rescales every row of W, "
                + "has full rank and depends on the base weights, so the spectrum of s·B·A would misdescribe it; no spectrum is computed for DoRA";
    }

    /** a: (r, in) row-major, b: (out, r) row-major. */
    public static Module of(String name, float[] a, float[] b, int r, double scaling) {
        int in = a.length / r, outDim = b.length / r;
        double[][] ga = new double[r][r], gb = new double[r][r];
        for (int i = 0; i < r; i++)
            for (int j = i; j < r; j++) {
                double s = 0;
                for (int k = 0; k < in; k++) s += (double) a[i * in + k] * a[j * in + k];
                ga[i][j] = ga[j][i] = s;
                double t = 0;
                for (int k = 0; k < outDim; k++) t += (double) b[k * r + i] * b[k * r + j];
                gb[i][j] = gb[j][i] = t;
            }
        // G_A^½ = V diag(√λ) Vᵀ
        double[][] v = new double[r][r];
        double[] lambda = jacobi(ga, v);
        double[][] half = new double[r][r];
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int k = 0; k < r; k++) s += v[i][k] * Math.sqrt(Math.max(0, lambda[k])) * v[j][k];
                half[i][j] = s;
            }
        double[][] m = multiply(multiply(half, gb), half);
        double[] eig = jacobi(m, new double[r][r]);
        double[] sigma = new double[r];
        for (int i = 0; i < r; i++) sigma[i] = Math.abs(scaling) * Math.sqrt(Math.max(0, eig[i]));
        Arrays.sort(sigma);
        for (int i = 0; i < r / 2; i++) {
            double t = sigma[i];
            sigma[i] = sigma[r - 1 - i];
            sigma[r - 1 - i] = t;
        }
        double sum = 0, energy = 0;
        for (double s : sigma) {
            sum += s;
            energy += s * s;
        }
        double entropy = 0;
        int used = 0;
        double smallest = sigma[0];
        for (double s : sigma) {
            if (s > 0 && sum > 0) entropy -= (s / sum) * Math.log(s / sum);
            if (s > 0.01 * sigma[0]) {
                used++;
                smallest = s;
            }
        }
        return new Module(name, r, sigma, sum > 0 ? Math.exp(entropy) : 0, used, energy > 0 ? sigma[0] * sigma[0] / energy : 0,
                smallest > 0 ? sigma[0] / smallest : Double.POSITIVE_INFINITY);
    }

    private static double[][] multiply(double[][] x, double[][] y) {
        int n = x.length;
        double[][] z = new double[n][n];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                double xi = x[i][k];
                if (xi == 0) continue;
                for (int j = 0; j < n; j++) z[i][j] += xi * y[k][j];
            }
        return z;
    }

    /** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations; eigenvectors into the columns of {@code vecs}. */
    static double[] jacobi(double[][] sym, double[][] vecs) {
        int n = sym.length;
        double[][] a = new double[n][];
        for (int i = 0; i < n; i++) a[i] = sym[i].clone();
        for (int i = 0; i < n; i++) {
            Arrays.fill(vecs[i], 0);
            vecs[i][i] = 1;
        }
        for (int sweep = 0; sweep < 100; sweep++) {
            double off = 0;
            for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) off += a[i][j] * a[i][j];
            if (off < 1e-30) break;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++) {
                    if (Math.abs(a[p][q]) < 1e-300) continue;
                    double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                    double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++) {
                        double akp = a[k][p], akq = a[k][q];
                        a[k][p] = c * akp - s * akq;
                        a[k][q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++) {
                        double apk = a[p][k], aqk = a[q][k];
                        a[p][k] = c * apk - s * aqk;
                        a[q][k] = s * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++) {
                        double vkp = vecs[k][p], vkq = vecs[k][q];
                        vecs[k][p] = c * vkp - s * vkq;
                        vecs[k][q] = s * vkp + c * vkq;
                    }
                }
        }
        double[] d = new double[n];
        for (int i = 0; i < n; i++) d[i] = a[i][i];
        return d;
    }

    /** A plain-text table for the terminal and reports. */
    public static String table(List<Module> mods) {
        var sb = new StringBuilder(String.format("%-40s %4s %10s %8s %6s %9s %9s  %s%n", "module", "r", "σ_max", "eff.rank", "used", "top1 en.", "cond.", "warning"));
        for (Module m : mods)
            sb.append(String.format("%-40s %4d %10.4g %8.2f %6d %8.1f%% %9.3g  %s%n", m.name(), m.r(), m.sigma().length == 0 ? 0 : m.sigma()[0],
                    m.effectiveRank(), m.usedRank(), 100 * m.top1Energy(), m.condition(), m.warning() == null ? "" : m.warning()));
        return sb.toString();
    }
}
