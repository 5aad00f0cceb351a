package dev.tune4j.eval;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * report.html as people see it: rendered by headless Chromium (Debian's {@code chromium}, which .ci/run installs) from a
 * real short training run on the embedded stories260K and from the 24-layer fixture (with a preference stage's reward curves), with no console errors and a
 * screenshot that is more than a blank page. Skips, saying so, where chromium is not installed.
 */
class ReportRenderTest {
    @TempDir
    Path tmp;

    static String chromium;

    @BeforeAll
    static void findChromium() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":"))
            for (String name : List.of("chromium", "chromium-browser"))
                if (chromium == null && Files.isExecutable(Path.of(dir, name))) chromium = Path.of(dir, name).toString();
        if (chromium == null) {
            System.err.println("ReportRenderTest SKIPPED: no chromium on PATH (apt-get install chromium; .ci/run installs it)");
            Assumptions.abort("chromium not installed: report rendering not checked");
        }
    }

    /** What Chromium said while rendering: its exit code and the lines of page console output (errors, uncaught exceptions). */
    record Rendered(int code, List<String> console, String stderr) {}

    /**
     * Chromium logs every console message of the page to stderr as {@code [pid:tid:time:LEVEL:CONSOLE:line] "text", source: …}
     * (checked on a page that calls console.error and an undefined function: both appear so, the second as
     * "Uncaught ReferenceError"). The report has no scripts, so any such line is an error.
     */
    Rendered render(Path html, Path png) throws Exception {
        var cmd = List.of(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                "--user-data-dir=" + tmp.resolve("chromium-profile"), "--screenshot=" + png, "--window-size=1200,3000", html.toUri().toString());
        Path err = tmp.resolve("chromium-" + png.getFileName() + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(err.toFile()).start();
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("chromium did not finish rendering " + html + " in 180 s");
        }
        String log = Files.readString(err);
        var console = new ArrayList<String>();
        for (String line : log.split("\n"))
            if (line.contains(":CONSOLE") || line.contains("Uncaught")) console.add(line);
        return new Rendered(p.exitValue(), console, log);
    }

    /** Distinct colours in the screenshot (a blank or error page has a handful). */
    static int colours(Path png) throws Exception {
        var img = ImageIO.read(png.toFile());
        var seen = new HashSet<Integer>();
        for (int y = 0; y < img.getHeight(); y += 3)
            for (int x = 0; x < img.getWidth(); x += 3) seen.add(img.getRGB(x, y));
        return seen.size();
    }

    void assertRendersCleanly(Path html) throws Exception {
        Path png = tmp.resolve(html.getParent().getFileName() + ".png");
        var r = render(html, png);
        assertThat(r.code()).as(r.stderr()).isZero();
        assertThat(r.console()).as("console output of " + html).isEmpty();
        assertThat(png).exists();
        var img = ImageIO.read(png.toFile());
        assertThat(img.getWidth()).isEqualTo(1200);
        assertThat(colours(png)).as("distinct colours in the screenshot of " + html).isGreaterThan(100);
        String keep = System.getProperty("tune4j.report.screenshot"); // -Dtune4j.report.screenshot=/some/dir keeps them for a look
        if (keep != null) Files.copy(png, Path.of(keep).resolve(png.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    @Test
    void theConsoleCheckCatchesABrokenPage() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("broken"));
        Path page = dir.resolve("broken.html");
        Files.writeString(page, "<!DOCTYPE html><html><body><p>broken</p><script>console.error('deliberate');undefinedFunction();</script></body></html>");
        var r = render(page, tmp.resolve("broken.png"));
        assertThat(r.code()).isZero();
        assertThat(r.console()).hasSize(2).anyMatch(l -> l.contains("Uncaught ReferenceError")).anyMatch(l -> l.contains("deliberate"));
    }

    @Test
    void aRealRunsReportRendersWithoutConsoleErrors() throws Exception {
        Path model = EmbeddedModel.stories260k();
        var sb = new StringBuilder("[");
        String[] names = {"Lily", "Tom", "Ben", "Sue"}, colours = {"red", "blue", "green", "pink"};
        for (int i = 0; i < 32; i++)
            sb.append(i == 0 ? "" : ",").append("{\"instruction\": \"What colour does ").append(names[i % 4]).append(" like?\", \"output\": \"")
                    .append(names[i % 4]).append(" likes ").append(colours[i % 4]).append(".\"}");
        Path data = tmp.resolve("task.json"), general = tmp.resolve("general.txt"), out = tmp.resolve("run");
        Files.writeString(data, sb.append("]").toString());
        Files.writeString(general, "Once upon a time, there was a little girl named Lily. She loved to play outside.\n");
        CliRun r = CliRun.of("train", "--model", model.toString(), "--data", data.toString(), "--out", out.toString(), "--r", "4", "--lr", "3e-3",
                "--batch-size", "4", "--max-seq-len", "48", "--max-steps", "6", "--eval-steps", "3", "--samples", "2", "--general-file", general.toString());
        assertThat(r.code()).as(r.err() + r.out()).isZero();
        assertThat(r.out()).containsPattern("phases: load [0-9.]+ m?s, forgetting base .*, training .*, final validation .*, save .*, adapter spectrum .*, "
                + "forgetting check .*, samples .*, report .* \\(total ");
        assertRendersCleanly(out.resolve("report.html"));
    }

    @Test
    void theCapstoneShapedFixtureRendersWithoutConsoleErrors() throws Exception {
        Path run = ReportTest.fixture(Files.createDirectories(tmp.resolve("fixture")), true);
        assertRendersCleanly(Report.write(run));
    }
}
