package dev.tune4j.cli;

import dev.tune4j.CliRun;
import dev.tune4j.hf.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** Issue 11 item 7: one error policy — exit codes from the user-error type, one line for a bug and where its trace went. */
class ErrorsTest {
    @TempDir
    Path tmp;

    record Reported(int code, String err) {}

    static Reported report(Throwable e, boolean debug) {
        var sw = new StringWriter();
        int code = Errors.report(e, new PrintWriter(sw), debug);
        return new Reported(code, sw.toString());
    }

    @Test
    void userErrorsExitTwoWithTheirMessageAlone() {
        var r = report(new UserError("--lr: expected a positive number, found -1"), false);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("error: --lr: expected a positive number, found -1" + System.lineSeparator());
        var missing = report(new NoSuchFileException("/no/such/model"), false);
        assertThat(missing.code()).isEqualTo(2);
        assertThat(missing.err()).contains("no such file: /no/such/model").doesNotContain("\tat ");
    }

    @Test
    void aPlainIllegalArgumentExceptionIsABugNotBadInput() {
        // IllegalArgumentException also comes out of bugs (a JDK call misused): only UserError means the user's input
        var r = report(new IllegalArgumentException("Comparison method violates its general contract!"), false);
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).startsWith("internal error (a bug in tune4j, not in your input): IllegalArgumentException: Comparison method");
    }

    @Test
    void anInternalErrorIsOneLineNamingWhereTheTraceWent() throws IOException {
        var r = report(new NullPointerException("Cannot read field \"x\" because \"y\" is null"), false);
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err().lines().toList()).hasSize(1);
        assertThat(r.err()).contains("internal error").contains("NullPointerException").contains("rerun with --debug").doesNotContain("\tat ");
        var m = Pattern.compile("full trace in (\\S+) ").matcher(r.err());
        assertThat(m.find()).as(r.err()).isTrue();
        Path trace = Path.of(m.group(1));
        try {
            assertThat(Files.readString(trace)).contains("java.lang.NullPointerException").contains("\tat dev.tune4j.cli.ErrorsTest");
        } finally {
            Files.deleteIfExists(trace);
        }
    }

    @Test
    void aRunFolderOfOursGetsTheTraceAsErrorLogAUsersFolderDoesNot() throws IOException {
        Path users = Files.createDirectories(tmp.resolve("users-folder"));
        Main.traceDir = users;
        var r = report(new IllegalStateException("boom"), false);
        assertThat(users.resolve("error.log")).doesNotExist();
        Files.deleteIfExists(Path.of(r.err().replaceAll("(?s).*full trace in (\\S+) .*", "$1").strip()));

        Path run = Files.createDirectories(tmp.resolve("run"));
        Files.writeString(run.resolve("run_config.json"), "{}");
        Main.traceDir = run;
        try {
            var again = report(new IllegalStateException("boom"), false);
            assertThat(again.err()).contains("full trace in " + run.resolve("error.log"));
            assertThat(Files.readString(run.resolve("error.log"))).contains("java.lang.IllegalStateException: boom");
        } finally {
            Main.traceDir = null;
        }
    }

    @Test
    void expectedFailuresAndFullDisksAreExitOneWithoutTheWordBug() {
        var disk = report(new UncheckedIOException(new IOException("No space left on device")), false);
        assertThat(disk.code()).isEqualTo(1);
        assertThat(disk.err()).startsWith("error: I/O failure: No space left on device").doesNotContain("internal error");
        var oom = report(new OutOfMemoryError("Java heap space"), false);
        assertThat(oom.code()).isEqualTo(1);
        assertThat(oom.err()).contains("out of memory").contains("--batch-size");
        var merge = report(new dev.tune4j.peft.Merge.VerificationFailed("merge verification failed: …"), false);
        assertThat(merge.code()).isEqualTo(1);
        assertThat(merge.err()).isEqualTo("error: merge verification failed: …" + System.lineSeparator());
    }

    @Test
    void debugPrintsTheTraceWhereverItSitsOnTheLine() {
        for (String[] args : List.of(new String[]{"--debug", "inspect", "/no/such/folder"}, new String[]{"inspect", "/no/such/folder", "--debug"})) {
            var r = CliRun.of(args);
            assertThat(r.code()).isEqualTo(2);
            assertThat(r.err()).contains("/no/such/folder").contains("\tat ");
        }
        var plain = CliRun.of("inspect", "/no/such/folder");
        assertThat(plain.code()).isEqualTo(2);
        assertThat(plain.err()).contains("/no/such/folder").doesNotContain("\tat ");
    }

    /** The policy holds only if bad input is thrown as UserError: a plain IllegalArgumentException in main code must be a bug check. */
    @Test
    void mainCodeThrowsNoPlainIllegalArgumentExceptionOutsideTheseInternalChecks() throws IOException {
        var allowed = List.of("model/Linear.java", "hf/PythonJson.java", "hf/TensorBlob.java", "hf/Gguf.java", "data/Example.java");
        Path src = Path.of("src/main/java/dev/tune4j");
        var found = new ArrayList<String>();
        try (Stream<Path> files = Files.walk(src)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                String rel = src.relativize(f).toString().replace('\\', '/');
                if (allowed.contains(rel)) continue;
                var lines = Files.readAllLines(f);
                for (int i = 0; i < lines.size(); i++)
                    if (lines.get(i).contains("new IllegalArgumentException(")) found.add(rel + ":" + (i + 1));
            }
        }
        assertThat(found).as("throw UserError for bad input (exit 2), IllegalStateException for broken invariants").isEmpty();
    }
}
