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

    /**
     * Starts a new peak: VmHWM is reset to the current RSS (Linux's clear_refs "5"), so a later {@link #peakResidentBytes}
     * is the peak of what ran since (a benchmark's measured phase, not the model building before it). False where
     * unavailable.
     */
    public static synchronized boolean resetPeak() {
        earlier = Math.max(earlier, peakResidentBytes());
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static long earlier; // the highest VmHWM before a reset: the process's own peak outlives them

    /** The process's peak since it started, across {@link #resetPeak}s (several runs in one JVM: the demo, tests). */
    public static synchronized long processPeakBytes() {
        return Math.max(earlier, peakResidentBytes());
    }

    public static double mib(long bytes) {
        return bytes / (1024.0 * 1024.0);
    }
}
