package dev.tune4j.cli;

import picocli.CommandLine;

import java.util.Arrays;
import picocli.CommandLine.Command;

/**
 * tune4j's command line. Exit codes: 0 ok, 1 failure while running (or a bug: one line says where its trace went), 2 bad
 * input (usage, files, formats: {@link dev.tune4j.hf.UserError}). {@code --debug} anywhere prints full stack traces.
 */
@Command(name = "tune4j", mixinStandardHelpOptions = true, version = "tune4j 0.1.0",
        description = "Fine-tune, evaluate and run Llama-family language models on the JVM (Hugging Face formats, no Python).",
        footer = {"", "Exit codes: 0 ok, 1 failed while running, 2 bad input. Add --debug anywhere to print full stack traces."},
        subcommands = {DemoCommand.class, InspectCommand.class, GenerateCommand.class, ChatCommand.class, TemplateCommand.class,
                ConvertCommand.class, LogitsCommand.class, MergeCommand.class, EvalCommand.class, ReportCommand.class, ExportCommand.class, QuantizeCommand.class, ServeCommand.class, PlanCommand.class, AdviseCommand.class, BenchCommand.class, CommandLine.HelpCommand.class,
                picocli.AutoComplete.GenerateCompletion.class})
public final class Main implements Runnable {
    public static final int BAD_INPUT = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns its exit code (tests call this instead of main). */
    /** The planner must answer fast: for {@code plan}, only its command model is built (and libtorch is never touched). */
    @Command(name = "tune4j", subcommands = {PlanCommand.class, AdviseCommand.class})
    static final class PlanOnly implements Runnable {
        @Override
        public void run() {
        }
    }

    public static int run(String... args) {
        // --debug may sit anywhere on the line (before or after the subcommand): it is ours, not a subcommand's option
        boolean debug = Arrays.asList(args).contains("--debug") || System.getenv("TUNE4J_DEBUG") != null;
        args = Arrays.stream(args).filter(a -> !a.equals("--debug")).toArray(String[]::new);
        boolean plan = args.length > 0 && (args[0].equals("plan") || args[0].equals("advise"));
        var cl = plan ? new CommandLine(new PlanOnly()) : new CommandLine(new Main());
        if (!plan) cl.addSubcommand("train", TrainCommand.build());
        cl.registerConverter(Boolean.class, Main::yesNo);
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> Errors.report(e, cmd.getErr(), debug));
        traceDir = null;
        lastArgs = args;
        lastDebug = debug;
        try {
            return cl.execute(args);
        } catch (Error e) { // OutOfMemoryError, StackOverflowError: not handed to picocli's handler
            return Errors.report(e, cl.getErr(), debug);
        }
    }

    /**
     * Where a command that has an output folder wants the trace of an internal error (train: its run folder, once it
     * exists); null = a file in the temporary directory.
     */
    static volatile java.nio.file.Path traceDir;
    /** The command line being run (without --debug), written at the top of a trace file. */
    static volatile String[] lastArgs = {};
    static volatile boolean lastDebug;

    /** Boolean answers: yes/no as well as true/false. */
    static Boolean yesNo(String s) {
        return switch (s.toLowerCase()) {
            case "yes", "y", "true" -> true;
            case "no", "n", "false" -> false;
            default -> throw new picocli.CommandLine.TypeConversionException("expected yes or no, found '" + s + "'");
        };
    }
}
