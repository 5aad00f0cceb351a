package dev.tune4j.plan;

import dev.tune4j.hf.UserError;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Devices a run can be planned for: data-centre and consumer GPUs (memory, dense BF16 tensor peak, default hourly price),
 * Apple M-series unified-memory sizes and this machine's RAM. Figures and their sources: ../shared/reference/
 * memory-and-quantization.md §4.3–4.4; every price can be overridden (--price NAME=USD).
 */
public final class Gpus {
    private Gpus() {}

    /**
     * @param memoryBytes  what a run may use: device memory for GPUs; for unified memory the share the OS lets the GPU
     *                     wire (75 %, macOS's default working-set limit on larger machines); for this machine its MemTotal
     * @param bf16Tflops   dense BF16 tensor peak with FP32 accumulate (T4: FP16, it has no BF16); NaN when unknown
     * @param usdPerHour   default on-demand price per device-hour (middle of the ranges the reference found); NaN when no
     *                     source was found
     * @param kind         "cuda", "apple" or "host"
     */
    public record Gpu(String name, long memoryBytes, double bf16Tflops, double usdPerHour, String kind, String note) {
        public double memoryGb() {
            return memoryBytes / 1e9;
        }

        public Gpu withPrice(double usd) {
            return new Gpu(name, memoryBytes, bf16Tflops, usd, kind, note);
        }
    }

    private static final double NONE = Double.NaN;
    public static final Map<String, Gpu> ALL = new LinkedHashMap<>();

    private static void cuda(String name, double gb, double tflops, double usd, String note) {
        ALL.put(name, new Gpu(name, (long) (gb * 1e9), tflops, usd, "cuda", note));
    }

    static {
        cuda("t4", 16, 65, NONE, "no BF16: FP16 mixed 65 TFLOPS; no price source found");
        cuda("l4", 24, 121, NONE, "no price source found");
        cuda("a10g", 24, 70, NONE, "tensor peak below the A10's 125; ~70 is the commonly quoted, unverified figure; no price source found");
        cuda("rtx3090", 24, 71, NONE, "71 with FP32 accumulate (142 with FP16 accumulate); no price source found");
        cuda("rtx4090", 24, 165.2, 0.32, "price: Vast.ai 0.24–0.40 (2026)");
        cuda("a100-40gb", 40, 312, 4.10, "price: AWS p4d.24xlarge per GPU (2026)");
        cuda("a100-80gb", 80, 312, 1.90, "price: 0.80–3.00 (mercatus, 2026)");
        cuda("h100", 80, 989.4, 3.00, "H100 SXM; price: specialty clouds 2.50–3.50 (mercatus, 2026)");
        cuda("h200", 141, 989.4, 4.75, "price: 2.50–7.00 (mercatus, 2026)");
        for (int gb : new int[]{8, 16, 24, 32, 36, 48, 64, 96, 128, 192})
            ALL.put("apple-m-" + gb + "gb", new Gpu("apple-m-" + gb + "gb", (long) (gb * 1e9 * 0.75), NONE, NONE, "apple",
                    gb + " GB unified memory, 75 % usable by the GPU"));
    }

    /** "this-machine": MemTotal from /proc/meminfo (the CPU build trains in host RAM). */
    public static Gpu thisMachine() {
        long bytes = -1;
        try {
            for (String l : Files.readAllLines(Path.of("/proc/meminfo")))
                if (l.startsWith("MemTotal:")) bytes = Long.parseLong(l.substring(9).trim().split("\\s+")[0]) * 1024;
        } catch (IOException | RuntimeException e) {
            bytes = Runtime.getRuntime().maxMemory() * 4; // no /proc: the JVM's default heap is a quarter of RAM
        }
        return new Gpu("this-machine", bytes, NONE, 0.0, "host", "this machine's RAM (" + Math.round(bytes / 1073741824.0) + " GiB)");
    }

    public static Gpu get(String name) {
        String n = name.toLowerCase();
        if (n.equals("this-machine") || n.equals("cpu")) return thisMachine();
        Gpu g = ALL.get(n);
        if (g == null) throw new UserError("unknown GPU '" + name + "': expected one of " + names());
        return g;
    }

    public static List<String> names() {
        var l = new ArrayList<>(ALL.keySet());
        l.add("this-machine");
        return l;
    }

    /** The device list with prices overridden: each entry NAME=USD_PER_HOUR. */
    public static Gpu priced(Gpu g, Map<String, Double> prices) {
        Double p = prices.get(g.name());
        return p == null ? g : g.withPrice(p);
    }
}
