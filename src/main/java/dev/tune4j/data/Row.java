package dev.tune4j.data;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;

/** One record of a data file and where it came from ("line 12" for JSONL, "row 3" for a JSON array, "block 2" for text). */
public record Row(Path file, String where, JsonNode value) {
    DataException error(String what) {
        return new DataException(file, where, what);
    }
}
