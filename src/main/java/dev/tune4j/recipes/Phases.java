package dev.tune4j.recipes;

import dev.tune4j.eval.Units;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * How long each phase of a run took, in the order they ran: each phase is marked as it ends. The run log ends with them
 * and summary.json keeps them (phase_seconds) for the report's time bar.
 */
final class Phases {
    private final LinkedHashMap<String, Double> seconds = new LinkedHashMap<>();
    private final long start = System.nanoTime();
    private long last = start;

    /** Ends the phase under way, called {@code name}; returns its seconds. */
    double mark(String name) {
        long now = System.nanoTime();
        double s = (now - last) / 1e9;
        seconds.merge(name, s, Double::sum);
        last = now;
        return s;
    }

    /** Moves {@code s} seconds of phase {@code from} into a phase of its own (final validation runs inside the training loop). */
    void split(String from, String name, double s) {
        if (s <= 0 || !seconds.containsKey(from)) return;
        seconds.put(from, seconds.get(from) - s);
        seconds.put(name, s);
    }

    Map<String, Double> seconds() {
        return java.util.Collections.unmodifiableMap(seconds);
    }

    /** Seconds since the run started. */
    double total() {
        return (System.nanoTime() - start) / 1e9;
    }

    /** "phases: load 3.2 s, training 1 min 4 s, …" */
    String line() {
        var sb = new StringBuilder("phases:");
        seconds.forEach((k, v) -> sb.append(sb.length() > 7 ? ", " : " ").append(k).append(' ').append(Units.duration(v)));
        return sb.append(" (total ").append(Units.duration(total())).append(')').toString();
    }
}
