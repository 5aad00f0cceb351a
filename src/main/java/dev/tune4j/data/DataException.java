package dev.tune4j.data;

import dev.tune4j.hf.UserError;

import java.nio.file.Path;

/** A bad data row: names the file, the line (JSONL) or row index (JSON array), and the field. */
public class DataException extends UserError {
    public DataException(Path file, String where, String what) {
        super(file + (where.isEmpty() ? "" : " " + where) + ": " + what);
    }
}
