package dev.tune4j.data;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Reads data files into rows: a JSON array (.json), one JSON object per line (.jsonl), or plain text (.txt: documents
 * separated by blank lines, each becoming {"text": …}). Files are streamed (no size limit beyond the rows themselves)
 * and strict, as Python's json.loads is: a UTF-8 byte-order mark is skipped, invalid UTF-8 is named with its line and
 * byte offset, anything after a line's JSON value is an error, and only regular files are read. A .jsonl file that
 * holds one JSON array is read as one. Bad JSON fails with the line, or counts as skipped with {@code skipBad}.
 */
public final class DataFiles {
    private DataFiles() {}

    public record Read(List<Row> rows, List<String> skipped) {}

    private static final ObjectMapper MAPPER = new ObjectMapper();

    public static Read read(Path file, boolean skipBad) {
        var rows = new ArrayList<Row>();
        var skipped = new ArrayList<String>();
        forEach(file, skipBad, rows::add, skipped::add);
        if (rows.isEmpty()) throw new DataException(file, "", "holds no records");
        return new Read(rows, skipped);
    }

    /** Streams the rows of {@code file} to {@code rows}; with {@code skipBad}, malformed JSONL lines go to {@code skipped}. */
    public static void forEach(Path file, boolean skipBad, Consumer<Row> rows, Consumer<String> skipped) {
        if (!Files.exists(file)) throw new DataException(file, "", "no such file");
        if (Files.isDirectory(file)) throw new DataException(file, "", "is a folder, expected a data file (.json, .jsonl or .txt)");
        if (!Files.isRegularFile(file)) throw new DataException(file, "", "not a regular file (a device, pipe or socket): give a .json, .jsonl or .txt file");
        String name = file.getFileName().toString().toLowerCase();
        try (InputStream in = new BufferedInputStream(Files.newInputStream(file), 1 << 16)) {
            var lines = new Lines(file, in);
            if (name.endsWith(".txt")) text(file, lines, rows);
            else if (name.endsWith(".jsonl") && lines.firstByte() != '[') jsonl(file, lines, skipBad, rows, skipped);
            else array(file, lines, name.endsWith(".jsonl"), rows);
        } catch (IOException e) {
            throw new DataException(file, "", "cannot read: " + e.getMessage());
        }
    }

    private static void text(Path file, Lines lines, Consumer<Row> rows) throws IOException {
        int block = 0;
        var doc = new StringBuilder();
        for (String line; (line = lines.next()) != null || !doc.isEmpty(); ) {
            if (line != null && !line.isBlank()) {
                doc.append(doc.isEmpty() ? "" : "\n").append(line);
                continue;
            }
            if (!doc.isEmpty()) rows.accept(new Row(file, "block " + ++block, JsonNodeFactory.instance.objectNode().put("text", doc.toString().strip())));
            doc.setLength(0);
        }
    }

    private static void jsonl(Path file, Lines lines, boolean skipBad, Consumer<Row> rows, Consumer<String> skipped) throws IOException {
        for (String line; (line = lines.next()) != null; ) {
            if (line.isBlank()) continue;
            String where = "line " + lines.number();
            try (JsonParser p = MAPPER.createParser(line)) {
                JsonNode v = MAPPER.readTree(p);
                int end = (int) p.currentLocation().getCharOffset();
                if (end >= 0 && end < line.length() && !line.substring(end).isBlank()) {
                    String rest = line.substring(end).strip();
                    int column = line.indexOf(rest.charAt(0), end) + 1; // Python's json.loads: "Extra data: line 1 column N"
                    throw new DataException(file, where, "extra data after the JSON value, at column " + column + ": '"
                            + (rest.length() > 40 ? rest.substring(0, 40) + "…" : rest) + "' (one JSON value per line)");
                }
                rows.accept(new Row(file, where, v));
            } catch (JsonProcessingException | DataException e) {
                var err = e instanceof DataException d ? d : new DataException(file, where, "not valid JSON: " + ((JsonProcessingException) e).getOriginalMessage());
                if (!skipBad) throw err;
                skipped.accept(err.getMessage());
            }
        }
    }

    /** A JSON array of records, parsed element by element from the decoded stream (also a .jsonl that holds one). */
    private static void array(Path file, Lines lines, boolean asJsonl, Consumer<Row> rows) throws IOException {
        String hint = asJsonl ? " (this .jsonl file starts with '[' and is read as one JSON array)" : "";
        try (JsonParser p = MAPPER.createParser(lines.reader())) {
            if (p.nextToken() != JsonToken.START_ARRAY)
                throw new DataException(file, "", "expected a JSON array of records (or use .jsonl / .txt)" + (p.currentToken() == JsonToken.START_OBJECT ? "; found an object" : ""));
            int i = 0;
            while (p.nextToken() != JsonToken.END_ARRAY) {
                if (p.currentToken() == null) throw new DataException(file, "", "the JSON array is not closed: the file ends after row " + (i - 1) + hint);
                rows.accept(new Row(file, "row " + i++, MAPPER.readTree(p)));
            }
            if (p.nextToken() != null)
                throw new DataException(file, "line " + p.currentTokenLocation().getLineNr(), "extra data after the JSON array" + hint);
        } catch (JsonProcessingException e) {
            long line = e.getLocation() == null ? -1 : e.getLocation().getLineNr();
            throw new DataException(file, "line " + line, "not valid JSON: " + e.getOriginalMessage() + hint);
        } catch (Lines.BadUtf8 e) {
            throw e.error;
        }
    }

    /**
     * UTF-8 lines of a byte stream, decoded strictly: the byte-order mark is skipped, and a malformed sequence is a
     * {@link DataException} with its line and byte offset. '\n' ends a line; a '\r' before it is dropped.
     */
    static final class Lines {
        private final Path file;
        private final InputStream in;
        private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
        private long offset, lineStart;
        private int number;

        /** The decoding error, carried through a java.io.Reader (whose read methods may throw IOException only). */
        static final class BadUtf8 extends IOException {
            final DataException error;

            BadUtf8(DataException error) {
                super(error.getMessage());
                this.error = error;
            }
        }

        Lines(Path file, InputStream in) throws IOException {
            this.file = file;
            this.in = in;
            in.mark(3);
            byte[] bom = in.readNBytes(3);
            if (bom.length == 3 && (bom[0] & 0xff) == 0xEF && (bom[1] & 0xff) == 0xBB && (bom[2] & 0xff) == 0xBF) offset = 3;
            else in.reset();
        }

        /** The first byte that is not whitespace, without consuming anything; -1 for an empty file. */
        int firstByte() throws IOException {
            in.mark(1 << 16);
            try {
                for (int b, n = 0; n < (1 << 16) - 1 && (b = in.read()) != -1; n++) if (b != ' ' && b != '\t' && b != '\r' && b != '\n') return b;
                return -1;
            } finally {
                in.reset();
            }
        }

        /** The 1-based number of the line {@link #next} returned last. */
        int number() {
            return number;
        }

        /** The next line, or null at the end. */
        String next() throws IOException {
            buf.reset();
            lineStart = offset;
            int b;
            while ((b = in.read()) != -1) {
                offset++;
                if (b == '\n') break;
                if (buf.size() == Integer.MAX_VALUE - 16)
                    throw new DataException(file, "line " + (number + 1), "longer than 2 GB: one record per line (is this a binary file?)");
                buf.write(b);
            }
            if (b == -1 && buf.size() == 0 && offset == lineStart) return null;
            number++;
            byte[] bytes = buf.toByteArray();
            int n = bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? bytes.length - 1 : bytes.length;
            return decode(ByteBuffer.wrap(bytes, 0, n));
        }

        private String decode(ByteBuffer bytes) {
            CharBuffer out = CharBuffer.allocate(bytes.remaining());
            utf8.reset();
            CoderResult r = utf8.decode(bytes, out, true);
            if (r.isError()) {
                int at = bytes.position();
                throw new DataException(file, "line " + number, String.format("invalid UTF-8 at byte offset %d of the file (byte %d of the line: 0x%02X); "
                        + "save the file as UTF-8", lineStart + at, at + 1, bytes.get(at) & 0xff));
            }
            utf8.flush(out);
            return out.flip().toString();
        }

        /** The rest of the stream as characters, line by line, for the JSON parser; bad UTF-8 surfaces as {@link BadUtf8}. */
        java.io.Reader reader() {
            return new java.io.Reader() {
                private String line = "";
                private int pos;
                private boolean end;

                @Override
                public int read(char[] c, int off, int len) throws IOException {
                    while (!end && pos == line.length()) {
                        try {
                            String l = next();
                            if (l == null) end = true;
                            else {
                                line = l + "\n";
                                pos = 0;
                            }
                        } catch (DataException e) {
                            throw new BadUtf8(e);
                        }
                    }
                    if (end) return -1;
                    int n = Math.min(len, line.length() - pos);
                    line.getChars(pos, pos + n, c, off);
                    pos += n;
                    return n;
                }

                @Override
                public void close() {
                }
            };
        }
    }
}
