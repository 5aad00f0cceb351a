package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import dev.tune4j.peft.Merge;
import dev.tune4j.train.Trainer;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.*;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;

/**
 * The one error policy of the command line. Exit 2 for {@link UserError} (and for file-system refusals of a path the
 * user named), with the message alone. Exit 1 for work that failed without being anyone's bug (a run that diverged, a
 * merge that did not verify, a full disk), with the message alone. Anything else is a bug in tune4j: one line says so and
 * where its full trace went (the run folder's error.log, or a file in the temporary directory), exit 1.
 * {@code --debug} prints the trace of every error on stderr as well.
 */
final class Errors {
    private Errors() {}

    static int report(Throwable e, PrintWriter err, boolean debug) {
        Throwable cause = e instanceof UncheckedIOException u && u.getCause() != null ? u.getCause() : e;
        int code;
        if (cause instanceof UserError) {
            err.println("error: " + cause.getMessage());
            code = Main.BAD_INPUT;
        } else if (cause instanceof InvalidPathException p) { // only user-given strings become paths
            err.println("error: not a valid path: " + p.getMessage());
            code = Main.BAD_INPUT;
        } else if (cause instanceof FileSystemException f && namedPath(f)) {
            err.println("error: " + describe(f));
            code = Main.BAD_INPUT;
        } else if (cause instanceof Trainer.Diverged || cause instanceof Merge.VerificationFailed || cause instanceof dev.tune4j.dist.Group.PeerLost) {
            err.println("error: " + cause.getMessage());
            code = 1;
        } else if (cause instanceof IOException || cause instanceof OutOfMemoryError) {
            String what = cause instanceof OutOfMemoryError
                    ? "out of memory (" + cause.getMessage() + "): try a smaller --batch-size or --max-seq-len, or a larger -Xmx in JAVA_OPTS"
                    : "I/O failure: " + (cause instanceof FileSystemException f ? describe(f) : cause.getMessage());
            err.println("error: " + what + traceNote(cause, debug));
            code = 1;
        } else {
            err.println("internal error (a bug in tune4j, not in your input): " + cause.getClass().getSimpleName()
                    + (cause.getMessage() == null ? "" : ": " + firstLine(cause.getMessage())) + traceNote(cause, debug));
            code = 1;
        }
        if (debug) cause.printStackTrace(err);
        err.flush();
        return code;
    }

    /** Refusals about a path the user gave (missing, not allowed, wrong kind), as opposed to a device failing. */
    private static boolean namedPath(FileSystemException f) {
        return f instanceof NoSuchFileException || f instanceof AccessDeniedException || f instanceof NotDirectoryException
                || f instanceof FileAlreadyExistsException || f instanceof DirectoryNotEmptyException || f instanceof NotLinkException;
    }

    private static String describe(FileSystemException f) {
        String why = switch (f) {
            case NoSuchFileException x -> "no such file";
            case AccessDeniedException x -> "permission denied";
            case NotDirectoryException x -> "not a folder";
            case FileAlreadyExistsException x -> "already exists";
            case DirectoryNotEmptyException x -> "folder not empty";
            default -> f.getReason() == null ? "failed" : f.getReason();
        };
        return why + ": " + f.getFile() + (f.getOtherFile() == null ? "" : " -> " + f.getOtherFile());
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl) + " …";
    }

    /** Writes the full trace to a file and says where it went (or that --debug prints it below). */
    private static String traceNote(Throwable e, boolean debug) {
        if (debug) return " (trace below)";
        var sw = new StringWriter();
        e.printStackTrace(new PrintWriter(sw));
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        Path dir = Main.traceDir;
        // only into a run folder tune4j wrote (run_config.json is its mark), never into a folder of the user's
        Path file = dir != null && Files.isRegularFile(dir.resolve("run_config.json")) ? dir.resolve("error.log")
                : Path.of(System.getProperty("java.io.tmpdir"), "tune4j-error-" + stamp + "-" + ProcessHandle.current().pid() + ".log");
        try {
            // append: error.log in a run folder keeps the traces of earlier failed attempts
            Files.writeString(file, "[" + stamp + "] tune4j " + String.join(" ", Main.lastArgs) + "\n" + sw + "\n",
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            return "; full trace in " + file + " (or rerun with --debug)";
        } catch (IOException | RuntimeException io) {
            return "; rerun with --debug for the full trace";
        }
    }
}
