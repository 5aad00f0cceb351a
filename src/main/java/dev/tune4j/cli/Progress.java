package dev.tune4j.cli;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * A progress bar with rate and ETA on stderr for long work; silent for work too small to notice (under 64 MiB), so quick
 * commands and tests print nothing extra.
 */
final class Progress implements AutoCloseable {
    private static final long SHOW_FROM_BYTES = 64L << 20;
    private final ProgressBar bar;

    private Progress(ProgressBar bar) {
        this.bar = bar;
    }

    static Progress bytes(String task, long total) {
        if (total < SHOW_FROM_BYTES) return new Progress(null);
        return new Progress(new ProgressBarBuilder().setTaskName(task).setInitialMax(total).setUnit(" MiB", 1L << 20)
                .setStyle(ProgressBarStyle.ASCII).setConsumer(new ConsoleProgressBarConsumer(System.err)).showSpeed().build());
    }

    void step(long n) {
        if (bar != null) bar.stepBy(n);
    }

    @Override
    public void close() {
        if (bar != null) bar.close();
    }
}
