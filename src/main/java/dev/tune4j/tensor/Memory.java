package dev.tune4j.tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Resident memory of this process from /proc (Linux): current and peak, in bytes; -1 where /proc is unavailable. */
public final class Memory {
    private Memory() {}

    public static long residentBytes() {
        return statusField("VmRSS:");
    }

    public static long peakResidentBytes() {
        return statusField("VmHWM:");
    }

    private static long statusField(String key) {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status")))
                if (l.startsWith(key)) return Long.parseLong(l.substring(key.length()).trim().split("\\s+")[0]) * 1024;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    public static double mib(long bytes) {
        return bytes / (1024.0 * 1024.0);
    }
}
