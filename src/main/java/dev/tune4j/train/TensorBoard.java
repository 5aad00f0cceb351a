package dev.tune4j.train;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32C;

/**
 * TensorBoard scalars without TensorFlow: an {@code events.out.tfevents.*} file of TFRecords (length, masked CRC32C of
 * the length, payload, masked CRC32C of the payload), each payload an {@code Event} protobuf — wall_time (1, double),
 * step (2, int64), file_version (3, string) or summary (5) holding {@code Value}s of tag (1) and simple_value (2, float).
 */
public final class TensorBoard implements AutoCloseable {
    private final OutputStream out;
    public final Path file;

    public TensorBoard(Path dir) throws IOException {
        Files.createDirectories(dir);
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "localhost";
        }
        file = dir.resolve("events.out.tfevents." + System.currentTimeMillis() / 1000 + "." + host);
        out = Files.newOutputStream(file);
        var event = new ByteArrayOutputStream();
        fixed64(event, 1, Double.doubleToLongBits(System.currentTimeMillis() / 1000.0));
        bytes(event, 3, "brain.Event:2".getBytes(StandardCharsets.UTF_8));
        record(event.toByteArray());
    }

    public void scalar(String tag, double value, long step) throws IOException {
        var v = new ByteArrayOutputStream();
        bytes(v, 1, tag.getBytes(StandardCharsets.UTF_8));
        varint(v, (2 << 3) | 5);
        v.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat((float) value).array());
        var summary = new ByteArrayOutputStream();
        bytes(summary, 1, v.toByteArray());
        var event = new ByteArrayOutputStream();
        fixed64(event, 1, Double.doubleToLongBits(System.currentTimeMillis() / 1000.0));
        varint(event, 2 << 3);
        varint(event, step);
        bytes(event, 5, summary.toByteArray());
        record(event.toByteArray());
    }

    private void record(byte[] data) throws IOException {
        byte[] len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(data.length).array();
        out.write(len);
        out.write(le32(maskedCrc(len)));
        out.write(data);
        out.write(le32(maskedCrc(data)));
        out.flush();
    }

    static int maskedCrc(byte[] b) {
        var c = new CRC32C();
        c.update(b);
        int crc = (int) c.getValue();
        return ((crc >>> 15) | (crc << 17)) + 0xa282ead8;
    }

    private static byte[] le32(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    private static void varint(ByteArrayOutputStream o, long v) {
        while ((v & ~0x7FL) != 0) {
            o.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        o.write((int) v);
    }

    private static void fixed64(ByteArrayOutputStream o, int field, long bits) {
        varint(o, (field << 3) | 1);
        o.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(bits).array());
    }

    private static void bytes(ByteArrayOutputStream o, int field, byte[] b) {
        varint(o, (field << 3) | 2);
        varint(o, b.length);
        o.writeBytes(b);
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
