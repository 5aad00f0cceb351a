package dev.tune4j.hf;

import java.nio.file.Path;

/** A Hugging Face file that is not what it must be. The message names the file (and tensor or key) and says what was expected and found. */
public class HfFormatException extends UserError {
    public HfFormatException(Path file, String what) {
        super(file + ": " + what);
    }

    public HfFormatException(Path file, String what, Throwable cause) {
        super(file + ": " + what, cause);
    }
}
