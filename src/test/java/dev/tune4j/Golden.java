package dev.tune4j;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where ../shared is. When it exists (always in CI) a golden file that is missing is a failure; only a clone without
 * ../shared skips golden tests, and says so on stderr.
 */
public final class Golden {
    private Golden() {}

    public static final Path SHARED = locate();

    private static Path locate() {
        String env = System.getenv("TUNE4J_SHARED");
        if (env != null) return Path.of(env).toAbsolutePath().normalize();
        return Path.of(System.getProperty("user.dir")).resolve("../shared").toAbsolutePath().normalize();
    }

    public static boolean present() {
        return Files.isDirectory(SHARED);
    }

    /** A path under shared/: skips (loudly) without ../shared, fails if shared is there but the file is not. */
    public static Path file(String relative) {
        if (!present()) {
            System.err.println("SKIPPED: " + SHARED + " is absent, golden test needing '" + relative + "' does not run");
            Assumptions.abort("../shared absent: golden test skipped");
        }
        Path p = SHARED.resolve(relative);
        if (!Files.exists(p)) throw new AssertionError("golden file missing: " + p + " (../shared is present, so this is a failure)");
        return p;
    }

    public static Path golden(String relative) {
        return file("golden/" + relative);
    }

    public static long[] longs(com.fasterxml.jackson.databind.JsonNode a) {
        long[] v = new long[a.size()];
        for (int i = 0; i < v.length; i++) v[i] = a.get(i).asLong();
        return v;
    }

    public static Path asset(String relative) {
        return file("assets/" + relative);
    }
}
