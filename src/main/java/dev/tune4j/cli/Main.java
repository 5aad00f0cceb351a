package dev.tune4j.cli;

import dev.tune4j.hf.HfFormatException;
import dev.tune4j.text.TemplateException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** tune4j's command line. Exit codes: 0 ok, 1 failure while running, 2 bad input (usage, files, formats). */
@Command(name = "tune4j", mixinStandardHelpOptions = true, version = "tune4j 0.1.0",
        description = "Fine-tune, evaluate and run Llama-family language models on the JVM (Hugging Face formats, no Python).",
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
        boolean plan = args.length > 0 && (args[0].equals("plan") || args[0].equals("advise"));
        var cl = plan ? new CommandLine(new PlanOnly()) : new CommandLine(new Main());
        if (!plan) cl.addSubcommand("train", TrainCommand.build());
        cl.registerConverter(Boolean.class, Main::yesNo);
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            boolean badInput = e instanceof HfFormatException || e instanceof TemplateException || e instanceof IllegalArgumentException
                    || e instanceof dev.tune4j.data.DataException
                    || e instanceof java.nio.file.NoSuchFileException || e instanceof BadInput;
            String msg = e instanceof java.nio.file.NoSuchFileException ? "no such file: " + e.getMessage() : e.getMessage();
            cmd.getErr().println("error: " + (msg == null ? e.toString() : msg));
            boolean expected = badInput || e instanceof dev.tune4j.train.Trainer.Diverged;
            if (!expected || System.getenv("TUNE4J_DEBUG") != null) e.printStackTrace(cmd.getErr());
            return badInput ? BAD_INPUT : 1;
        });
        return cl.execute(args);
    }

    /** Boolean answers: yes/no as well as true/false. */
    static Boolean yesNo(String s) {
        return switch (s.toLowerCase()) {
            case "yes", "y", "true" -> true;
            case "no", "n", "false" -> false;
            default -> throw new picocli.CommandLine.TypeConversionException("expected yes or no, found '" + s + "'");
        };
    }

    /** A user error detected by a command (wrong combination of flags, malformed input file). */
    public static final class BadInput extends RuntimeException {
        public BadInput(String message) {
            super(message);
        }
    }
}
