package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
/**
 * Range checks for command-line numbers: each failure is a {@link UserError} (exit 2, before any work) naming the flag,
 * the range expected and the value found. NaN and infinities fail every check on a double.
 */
final class Limits {
    private Limits() {}

    /** An integer ≥ 1. */
    static long positive(String flag, long v) {
        if (v < 1) throw bad(flag, "an integer >= 1", v);
        return v;
    }

    /** A finite number > 0. */
    static double positive(String flag, double v) {
        if (!(v > 0) || Double.isInfinite(v)) throw bad(flag, "a number > 0", v);
        return v;
    }

    /** An integer ≥ 0. */
    static long nonNegative(String flag, long v) {
        if (v < 0) throw bad(flag, "an integer >= 0", v);
        return v;
    }

    /** A finite number ≥ 0. */
    static double nonNegative(String flag, double v) {
        if (!(v >= 0) || Double.isInfinite(v)) throw bad(flag, "a number >= 0", v);
        return v;
    }

    /** A number within lo..hi, each end included or not: inRange("--top-p", p, 0, false, 1, true) is (0, 1]. */
    static double inRange(String flag, double v, double lo, boolean loIncluded, double hi, boolean hiIncluded) {
        boolean ok = (loIncluded ? v >= lo : v > lo) && (hiIncluded ? v <= hi : v < hi);
        if (!ok) throw bad(flag, "a number in " + (loIncluded ? "[" : "(") + num(lo) + ", " + num(hi) + (hiIncluded ? "]" : ")"), v);
        return v;
    }

    /** An integer in [lo, hi], with why the upper end is what it is. */
    static long inRange(String flag, long v, long lo, long hi, String why) {
        if (v < lo || v > hi) throw bad(flag, "an integer in [" + lo + ", " + hi + "]" + (why == null ? "" : " (" + why + ")"), v);
        return v;
    }

    static UserError bad(String flag, String expected, Object found) {
        return new UserError(flag + ": expected " + expected + ", found " + found);
    }

    private static String num(double d) {
        return d == Math.rint(d) ? String.valueOf((long) d) : String.valueOf(d);
    }
}
