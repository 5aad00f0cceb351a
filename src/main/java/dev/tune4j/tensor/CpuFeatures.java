package dev.tune4j.tensor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/** What the CPU offers, read at run time (the machines differ between sessions: AVX2 only, AVX-512 with BF16, AMX). */
public final class CpuFeatures {
    private CpuFeatures() {}

    private static volatile Set<String> flags;

    /** The kernel's flags for the first CPU (Linux /proc/cpuinfo); empty where it cannot be read. */
    public static Set<String> flags() {
        if (flags == null) {
            Set<String> f = Set.of();
            try (var lines = Files.lines(Path.of("/proc/cpuinfo"))) {
                f = lines.filter(l -> l.startsWith("flags")).findFirst()
                        .map(l -> Set.of(l.substring(l.indexOf(':') + 1).trim().split("\\s+"))).orElse(Set.of());
            } catch (Exception ignored) {
                // not Linux, or no /proc: no bf16 path is chosen on its own (--compute-dtype still asks for it)
            }
            flags = f;
        }
        return flags;
    }

    /** bf16 dot products in hardware (AVX512_BF16 or AMX-BF16), which oneDNN's bf16 GEMMs use. */
    public static boolean bf16Dot() {
        return flags().contains("avx512_bf16") || flags().contains("amx_bf16");
    }

    /** The flags a benchmark records: the vector extensions that decide GEMM speed. */
    public static String summary() {
        return String.join(" ", flags().stream().filter(f -> f.equals("avx2") || f.equals("avx512f") || f.equals("avx512_bf16")
                || f.equals("amx_bf16") || f.equals("amx_tile") || f.equals("avx512_vnni") || f.equals("fma")).sorted().toList());
    }
}
