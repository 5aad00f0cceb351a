package dev.tune4j.hf;

/**
 * Bad input from the user — a flag, a file, a data row, a config key — with a message that names it and says what was
 * expected and what was found. The CLI exits 2 for exactly this type (and its subclasses) and prints no stack trace;
 * anything else escaping a command is a bug in tune4j and is reported as an internal error. It lives in hf, the bottom
 * package, so that every package can throw it; it stays an IllegalArgumentException for library callers.
 */
public class UserError extends IllegalArgumentException {
    public UserError(String message) {
        super(message);
    }

    public UserError(String message, Throwable cause) {
        super(message, cause);
    }
}
