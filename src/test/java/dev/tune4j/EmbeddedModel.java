package dev.tune4j;

import dev.tune4j.hf.Llama2cImport;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

/** The stories260K model shipped in the jar (demo resources), converted once per test run: a real model without ../shared. */
public final class EmbeddedModel {
    private EmbeddedModel() {}

    private static Path dir;

    public static synchronized Path stories260k() throws Exception {
        if (dir != null) return dir;
        Path tmp = Files.createTempDirectory("tune4j-stories");
        Path bin = tmp.resolve("stories260K.bin"), tok = tmp.resolve("tok512.bin");
        for (Path p : new Path[]{bin, tok})
            try (InputStream in = Objects.requireNonNull(EmbeddedModel.class.getResourceAsStream("/dev/tune4j/demo/" + p.getFileName()))) {
                Files.copy(in, p);
            }
        Llama2cImport.convert(bin, tok, tmp.resolve("hf"));
        dir = tmp.resolve("hf");
        return dir;
    }
}
