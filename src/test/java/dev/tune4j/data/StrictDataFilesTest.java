package dev.tune4j.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** DataFiles reads as strictly as Python's json.loads, streams, and names what is wrong with its file, line and byte. */
class StrictDataFilesTest {
    @TempDir
    Path tmp;

    static final byte[] BOM = {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF};

    Path write(String name, String text) throws Exception {
        return Files.writeString(tmp.resolve(name), text);
    }

    Path write(String name, byte[]... parts) throws Exception {
        var b = new ByteArrayOutputStream();
        for (byte[] p : parts) b.write(p);
        return Files.write(tmp.resolve(name), b.toByteArray());
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void anythingAfterALinesJsonValueIsExtraData() throws Exception {
        Path f = write("x.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}  {\"text\": \"c\"}\n{\"text\": \"d\"}}\n");
        assertThatThrownBy(() -> DataFiles.read(f, false)).isInstanceOf(DataException.class)
                .hasMessage(f + " line 2: extra data after the JSON value, at column 16: '{\"text\": \"c\"}' (one JSON value per line)");
        var read = DataFiles.read(f, true);
        assertThat(read.rows()).hasSize(1);
        assertThat(read.skipped()).hasSize(2);
        assertThat(read.skipped().get(1)).contains("line 3").contains("column 14: '}'");
        // trailing whitespace and CRLF line ends are not extra data
        assertThat(DataFiles.read(write("ok.jsonl", "{\"text\": \"a\"}  \r\n\r\n{\"text\": \"b\"}\t\r\n"), false).rows()).hasSize(2);
    }

    @Test
    void aByteOrderMarkIsSkippedInEveryFormat() throws Exception {
        for (String name : new String[]{"b.jsonl", "b.json", "b.txt"}) {
            String body = name.endsWith(".jsonl") ? "{\"text\": \"héllo\"}\n" : name.endsWith(".json") ? "[{\"text\": \"héllo\"}]" : "héllo\n";
            var rows = DataFiles.read(write(name, BOM, utf8(body)), false).rows();
            assertThat(rows).as(name).hasSize(1);
            assertThat(rows.getFirst().value().get("text").asText()).as(name).isEqualTo("héllo");
        }
    }

    @Test
    void invalidUtf8IsNamedWithLineAndByteOffset() throws Exception {
        byte[] bad = {'{', '"', 't', 'e', 'x', 't', '"', ':', ' ', '"', (byte) 0xC3, '(', '"', '}', '\n'};
        Path jsonl = write("u.jsonl", utf8("{\"text\": \"a\"}\n{\"text\": \"b\"}\n"), bad);
        // line 3 starts at byte 28; the bad byte is its 11th
        assertThatThrownBy(() -> DataFiles.read(jsonl, false)).isInstanceOf(DataException.class)
                .hasMessageContaining(jsonl + " line 3: invalid UTF-8 at byte offset 38 of the file (byte 11 of the line: 0xC3)");
        Path json = write("u.json", utf8("[\n{\"text\": \"a\"},\n"), bad, utf8("]"));
        assertThatThrownBy(() -> DataFiles.read(json, false)).hasMessageContaining(json + " line 3: invalid UTF-8 at byte offset 27");
        Path txt = write("u.txt", utf8("fine\n\n"), new byte[]{'o', 'k', (byte) 0xFF, '\n'});
        assertThatThrownBy(() -> DataFiles.read(txt, false)).hasMessageContaining(txt + " line 3: invalid UTF-8 at byte offset 8").hasMessageContaining("0xFF");
        // with a BOM, offsets still count the file's bytes
        Path withBom = write("ub.jsonl", BOM, bad);
        assertThatThrownBy(() -> DataFiles.read(withBom, false)).hasMessageContaining("line 1: invalid UTF-8 at byte offset 13");
    }

    @Test
    void aJsonArraySavedAsJsonlIsReadAsOne() throws Exception {
        Path pretty = write("a.jsonl", "[\n  {\"text\": \"a\"},\n  {\"text\": \"b\"}\n]\n");
        var rows = DataFiles.read(pretty, false).rows();
        assertThat(rows).extracting(r -> r.value().get("text").asText()).containsExactly("a", "b");
        assertThat(rows.get(1).where()).isEqualTo("row 1");
        assertThat(DataFiles.read(write("one.jsonl", "[{\"text\": \"a\"}, {\"text\": \"b\"}]"), false).rows()).hasSize(2);
        Path two = write("two.jsonl", "[{\"text\": \"a\"}]\n[{\"text\": \"b\"}]\n");
        assertThatThrownBy(() -> DataFiles.read(two, false)).hasMessageContaining(two + " line 2: extra data after the JSON array")
                .hasMessageContaining("starts with '[' and is read as one JSON array");
        Path json = write("x.json", "[{\"text\": \"a\"}] x");
        assertThatThrownBy(() -> DataFiles.read(json, false)).hasMessageContaining(json.toString()).hasMessageContaining("line 1");
        Path object = write("o.json", "{\"text\": \"a\"}\n");
        assertThatThrownBy(() -> DataFiles.read(object, false)).hasMessageContaining("expected a JSON array of records").hasMessageContaining("found an object");
    }

    @Test
    void onlyRegularFilesAreRead() throws Exception {
        assertThatThrownBy(() -> DataFiles.read(Path.of("/dev/zero"), false)).isInstanceOf(DataException.class)
                .hasMessageStartingWith("/dev/zero: not a regular file");
        Path fifo = tmp.resolve("pipe.jsonl");
        Process p = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assertThat(p.waitFor()).isZero();
        // a fifo with no writer would block a reader forever: refused before it is opened
        assertThatThrownBy(() -> DataFiles.read(fifo, false)).hasMessageStartingWith(fifo + ": not a regular file");
        Path dir = Files.createDirectories(tmp.resolve("d.jsonl"));
        assertThatThrownBy(() -> DataFiles.read(dir, false)).hasMessageStartingWith(dir + ": is a folder");
        // a link to a regular file is fine
        Path target = write("t.jsonl", "{\"text\": \"a\"}\n");
        assertThat(DataFiles.read(Files.createSymbolicLink(tmp.resolve("l.jsonl"), target), false).rows()).hasSize(1);
    }

    @Test
    void filesAreStreamedLineByLine() throws Exception {
        // 200k records (~6 MB): read without building the whole file as one String; rows keep their line numbers
        var sb = new StringBuilder();
        for (int i = 0; i < 200_000; i++) sb.append("{\"text\": \"record ").append(i).append("\"}\n");
        Path f = write("big.jsonl", sb.toString());
        int[] n = {0};
        DataFiles.forEach(f, false, r -> {
            if (n[0]++ == 199_999) assertThat(r.where()).isEqualTo("line 200000");
        }, s -> {});
        assertThat(n[0]).isEqualTo(200_000);
        var text = DataFiles.read(write("t.txt", "one\r\ntwo\r\n\r\n  \r\nthree\n"), false).rows();
        assertThat(text).extracting(r -> r.value().get("text").asText()).containsExactly("one\ntwo", "three");
    }
}
