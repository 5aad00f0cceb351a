package dev.tune4j.train;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/** A progress bar over training steps on stderr (rate, ETA, loss); redrawn every 0.5 s on a terminal, every 10 s in logs. */
public final class StepProgress {
    private StepProgress() {}

    public static ProgressBar create(String task, long steps) {
        int interval = System.console() != null ? 500 : 10_000;
        return new ProgressBarBuilder().setTaskName(task).setInitialMax(steps).setStyle(ProgressBarStyle.ASCII)
                .setConsumer(new ConsoleProgressBarConsumer(System.err)).setUpdateIntervalMillis(interval).build();
    }
}
