package dev.tune4j.cli;

import dev.tune4j.eval.Report;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** Regenerates a run folder's report.html from the files the run left. */
@Command(name = "report", mixinStandardHelpOptions = true, description = "Write RUN_DIR/report.html (curves, config, memory, spectrum, forgetting, samples).")
final class ReportCommand implements Callable<Integer> {
    @Parameters(paramLabel = "RUN_DIR", description = "a training run folder (--out of tune4j train)")
    Path run;

    @Override
    public Integer call() throws Exception {
        System.out.println("wrote " + Report.write(run));
        return 0;
    }
}
