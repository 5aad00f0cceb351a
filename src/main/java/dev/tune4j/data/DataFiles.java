package dev.tune4j.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads data files into rows: a JSON array (.json), one JSON object per line (.jsonl), or plain text (.txt: documents
 * separated by blank lines, each becoming {"text": …}). Bad JSON fails with the line, or counts as skipped with
 * {@code skipBad}.
 */
public final class DataFiles {
    private DataFiles() {}

    public record Read(List<Row> rows, List<String> skipped) {}

    public static Read read(Path file, boolean skipBad) {
        if (!Files.exists(file)) throw new DataException(file, "", "no such file");
        String name = file.getFileName().toString().toLowerCase();
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new DataException(file, "", "cannot read: " + e.getMessage());
        }
        var rows = new ArrayList<Row>();
        var skipped = new ArrayList<String>();
        var mapper = new ObjectMapper();
        if (name.endsWith(".txt")) {
            int block = 0;
            for (String doc : text.split("\\n\\s*\\n")) {
                block++;
                if (doc.isBlank()) continue;
                rows.add(new Row(file, "block " + block, JsonNodeFactory.instance.objectNode().put("text", doc.strip())));
            }
        } else if (name.endsWith(".jsonl")) {
            String[] lines = text.split("\\r?\\n");
            for (int i = 0; i < lines.length; i++) {
                if (lines[i].isBlank()) continue;
                try {
                    rows.add(new Row(file, "line " + (i + 1), mapper.readTree(lines[i])));
                } catch (JsonProcessingException e) {
                    var err = new DataException(file, "line " + (i + 1), "not valid JSON: " + e.getOriginalMessage());
                    if (!skipBad) throw err;
                    skipped.add(err.getMessage());
                }
            }
        } else {
            JsonNode root;
            try {
                root = mapper.readTree(text);
            } catch (JsonProcessingException e) {
                long line = e.getLocation() == null ? -1 : e.getLocation().getLineNr();
                throw new DataException(file, "line " + line, "not valid JSON: " + e.getOriginalMessage());
            }
            if (root == null || !root.isArray()) throw new DataException(file, "", "expected a JSON array of records (or use .jsonl / .txt)");
            for (int i = 0; i < root.size(); i++) rows.add(new Row(file, "row " + i, root.get(i)));
        }
        if (rows.isEmpty()) throw new DataException(file, "", "holds no records");
        return new Read(rows, skipped);
    }
}
