package dev.tune4j.text;

/** A chat template that cannot be parsed or rendered (or that called raise_exception); the message names template and line. */
public class TemplateException extends RuntimeException {
    public TemplateException(String message) {
        super(message);
    }
}
