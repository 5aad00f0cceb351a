package dev.tune4j.text;

import dev.tune4j.hf.UserError;

/** A chat template that cannot be parsed or rendered (or that called raise_exception); the message names template and line. */
public class TemplateException extends UserError {
    public TemplateException(String message) {
        super(message);
    }
}
