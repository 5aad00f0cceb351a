package dev.tune4j.train;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.DelegatingProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.time.Duration;

/**
 * The one progress bar of tune4j, on stderr with rate and ETA: training steps, validation and perplexity batches, the
 * spectrum's modules, loading and writing bytes. Redrawn every 0.5 s on a terminal, every 10 s in logs. Training's bar is
 * shown from the start; every other bar only once its work has run {@link #SHOW_AFTER_NANOS} (it then starts with the
 * progress and elapsed time so far, so rate and ETA are right), so quick work — and tests — print nothing extra.
 */
public final class StepProgress implements AutoCloseable {
    static final long SHOW_AFTER_NANOS = 1_000_000_000L;
    private final String task, unit;
    private final long total, unitSize, started = System.nanoTime();
    private long done;
    private String extra = "";
    private ProgressBar bar;

    private StepProgress(String task, long total, String unit, long unitSize, boolean now) {
        this.task = task;
        this.total = total;
        this.unit = unit;
        this.unitSize = unitSize;
        if (now) show();
    }

    /** Training steps: shown at once, as a run's main bar. */
    public static StepProgress training(String task, long steps) {
        return new StepProgress(task, steps, "", 1, true);
    }

    /** A phase of {@code total} units (" batches", " modules", " tensors"), shown once it lasts. */
    public static StepProgress phase(String task, long total, String unit) {
        return new StepProgress(task, total, unit, 1, false);
    }

    /** Bytes, shown in MiB once the work lasts (KiB below 16 MiB, which MiB would show as "0/0"). */
    public static StepProgress bytes(String task, long total) {
        return total < 16L << 20 ? new StepProgress(task, total, " KiB", 1L << 10, false) : new StepProgress(task, total, " MiB", 1L << 20, false);
    }

    private static volatile boolean silent;

    /** No bars from this process (a data-parallel worker other than rank 0: rank 0's bars speak for the job). */
    public static void silence() {
        silent = true;
    }

    private void show() {
        if (silent) return;
        boolean terminal = System.console() != null;
        // a terminal redraws one line in place; a log gets whole lines (a carriage return would glue the redraws into one)
        var consumer = terminal ? new ConsoleProgressBarConsumer(System.err) : new DelegatingProgressBarConsumer(System.err::println, 150);
        var b = new ProgressBarBuilder().setTaskName(task).setInitialMax(total).setStyle(ProgressBarStyle.ASCII)
                .setConsumer(consumer).setUpdateIntervalMillis(terminal ? 500 : 10_000).showSpeed(new java.text.DecimalFormat("0.00")); // slow phases run below 0.1/s: the default "#.0" printed ".0"
        if (!unit.isEmpty()) b.setUnit(unit, unitSize);
        if (done > 0) b.startsFrom(done, Duration.ofNanos(System.nanoTime() - started));
        bar = b.build();
        if (!extra.isEmpty()) bar.setExtraMessage(extra);
    }

    public void step() {
        step(1);
    }

    public void step(long n) {
        done += n;
        if (bar != null) bar.stepBy(n);
        else if (!silent && System.nanoTime() - started >= SHOW_AFTER_NANOS && done < total) show();
    }

    public void stepTo(long n) {
        step(n - done);
    }

    /** Text after the bar (training's loss, learning rate and tokens/s). */
    public void extra(String message) {
        extra = message;
        if (bar != null) bar.setExtraMessage(message);
    }

    @Override
    public void close() {
        if (bar != null) bar.close();
    }
}
