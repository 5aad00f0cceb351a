package dev.tune4j.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Event files read back by an independent reader written here from the format's description (TFRecord framing with
 * masked CRC32C, Event and Summary protobufs decoded field by field).
 */
class TensorBoardTest {
    @TempDir
    Path tmp;

    record Scalar(String tag, float value, long step) {}

    /** Parses every record, checking both CRCs; returns the scalars and the file_version of the first event. */
    static List<Object> read(Path file) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        var out = new ArrayList<Object>();
        while (b.hasRemaining()) {
            byte[] len = new byte[8];
            b.get(len);
            assertThat(b.getInt()).as("length crc").isEqualTo(masked(len));
            byte[] data = new byte[(int) ByteBuffer.wrap(len).order(ByteOrder.LITTLE_ENDIAN).getLong()];
            b.get(data);
            assertThat(b.getInt()).as("data crc").isEqualTo(masked(data));
            out.addAll(decodeEvent(data));
        }
        return out;
    }

    static int masked(byte[] x) {
        var c = new CRC32C();
        c.update(x);
        int crc = (int) c.getValue();
        return Integer.rotateRight(crc, 15) + 0xa282ead8;
    }

    static List<Object> decodeEvent(byte[] e) {
        var p = new Proto(e);
        long step = 0;
        var found = new ArrayList<Object>();
        var pending = new ArrayList<Object[]>();
        while (p.more()) {
            long key = p.varint();
            int field = (int) (key >>> 3), type = (int) (key & 7);
            if (field == 1 && type == 1) p.skip(8);
            else if (field == 2 && type == 0) step = p.varint();
            else if (field == 3 && type == 2) found.add(new String(p.bytes(), StandardCharsets.UTF_8));
            else if (field == 5 && type == 2) {
                var s = new Proto(p.bytes());
                while (s.more()) {
                    s.varint(); // Summary.value = 1
                    var v = new Proto(s.bytes());
                    String tag = null;
                    float val = Float.NaN;
                    while (v.more()) {
                        long k = v.varint();
                        if ((k >>> 3) == 1) tag = new String(v.bytes(), StandardCharsets.UTF_8);
                        else if ((k >>> 3) == 2 && (k & 7) == 5) val = v.float32();
                    }
                    pending.add(new Object[]{tag, val});
                }
            } else throw new AssertionError("unexpected field " + field + " type " + type);
        }
        for (Object[] x : pending) found.add(new Scalar((String) x[0], (Float) x[1], step));
        return found;
    }

    static final class Proto {
        final ByteBuffer b;

        Proto(byte[] x) {
            b = ByteBuffer.wrap(x).order(ByteOrder.LITTLE_ENDIAN);
        }

        boolean more() {
            return b.hasRemaining();
        }

        long varint() {
            long v = 0;
            for (int shift = 0; ; shift += 7) {
                int x = b.get() & 0xff;
                v |= (long) (x & 0x7f) << shift;
                if (x < 0x80) return v;
            }
        }

        byte[] bytes() {
            byte[] x = new byte[(int) varint()];
            b.get(x);
            return x;
        }

        float float32() {
            return b.getFloat();
        }

        void skip(int n) {
            b.position(b.position() + n);
        }
    }

    @Test
    void scalarsRoundTrip() throws Exception {
        Path file;
        try (var tb = new TensorBoard(tmp)) {
            tb.scalar("train/loss", 2.5, 1);
            tb.scalar("train/loss", 1.25, 2);
            tb.scalar("train/lr", 2e-4, 300);
            file = tb.file;
        }
        assertThat(file.getFileName().toString()).startsWith("events.out.tfevents.");
        var events = read(file);
        assertThat(events.getFirst()).isEqualTo("brain.Event:2");
        assertThat(events.subList(1, events.size())).containsExactly(new Scalar("train/loss", 2.5f, 1), new Scalar("train/loss", 1.25f, 2),
                new Scalar("train/lr", 2e-4f, 300));
    }
}
