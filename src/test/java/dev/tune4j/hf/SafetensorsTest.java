package dev.tune4j.hf;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.*;

/** Round trips for every dtype, sharding, and a named error (never a crash) for each kind of corrupt or hostile file. */
class SafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void roundTripAllDtypesWithMetadataAndAlignment() throws Exception {
        var t = new LinkedHashMap<String, TensorBlob>();
        t.put("f32", TensorBlob.ofFloats(new float[]{1.5f, -2f, 3.25f, 0}, 2, 2));
        t.put("bf16", TensorBlob.ofFloats(DType.BF16, new float[]{1.5f, -2f, 3.25f}, 3));
        t.put("f16", TensorBlob.ofFloats(DType.F16, new float[]{0.5f, 65504f}, 2));
        t.put("i64", TensorBlob.ofLongs(new long[]{-1, 1L << 40}, 2));
        t.put("i32", new TensorBlob(DType.I32, new long[]{2}, le(4, b -> b.putInt(-7).putInt(9))));
        t.put("i16", new TensorBlob(DType.I16, new long[]{1}, le(2, b -> b.putShort((short) -3))));
        t.put("i8", new TensorBlob(DType.I8, new long[]{2}, new byte[]{-5, 6}));
        t.put("u8", new TensorBlob(DType.U8, new long[]{1}, new byte[]{(byte) 200}));
        t.put("bool", new TensorBlob(DType.BOOL, new long[]{2}, new byte[]{1, 0}));
        t.put("scalar", TensorBlob.ofFloats(new float[]{7}));
        Path f = dir.resolve("a.safetensors");
        SafetensorsWriter.write(f, t, Map.of("format", "pt"));
        byte[] raw = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(raw, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertThat(n % 8).as("header padded to 8 bytes").isZero();
        try (Safetensors s = Safetensors.open(f)) {
            assertThat(s.metadata()).containsEntry("format", "pt");
            assertThat(s.floats("f32")).containsExactly(1.5f, -2f, 3.25f, 0);
            assertThat(s.floats("bf16")).containsExactly(1.5f, -2f, 3.25f);
            assertThat(s.floats("f16")).containsExactly(0.5f, 65504f);
            assertThat(s.longs("i64")).containsExactly(-1, 1L << 40);
            assertThat(s.longs("i32")).containsExactly(-7, 9);
            assertThat(s.longs("i16")).containsExactly(-3);
            assertThat(s.longs("i8")).containsExactly(-5, 6);
            assertThat(s.longs("u8")).containsExactly(200);
            assertThat(s.longs("bool")).containsExactly(1, 0);
            assertThat(s.info("scalar").shape()).isEmpty();
            for (TensorInfo i : s.tensors()) assertThat(i.begin() % i.dtype().bytes).as(i.name() + " aligned").isZero();
            assertThatThrownBy(() -> s.longs("f32")).isInstanceOf(HfFormatException.class).hasMessageContaining("f32");
        }
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertThat(Half.bf16ToFloat(Half.floatToBf16(1.00390625f))).isEqualTo(1.0f);      // halfway, even stays
        assertThat(Half.bf16ToFloat(Half.floatToBf16(1.01171875f))).isEqualTo(1.015625f); // halfway, odd rounds up
    }

    @Test
    void shardedWriterSplitsAndIndexResolves() throws Exception {
        var t = new LinkedHashMap<String, TensorBlob>();
        for (int i = 0; i < 5; i++) t.put("w" + i, TensorBlob.ofFloats(new float[100], 100));
        var files = SafetensorsWriter.writeSharded(dir, "model", t, 900);
        assertThat(files).extracting(p -> p.getFileName().toString())
                .contains("model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json");
        String index = Files.readString(dir.resolve("model.safetensors.index.json"));
        assertThat(index).contains("\"total_size\" : 2000").contains("\"w4\" : \"model-00003-of-00003.safetensors\"");
    }

    // ---- hostile files: each names the file (and tensor) ----

    @Test
    void truncatedData() throws Exception {
        Path f = dir.resolve("t.safetensors");
        SafetensorsWriter.write(f, Map.of("w", TensorBlob.ofFloats(new float[16], 16)), Map.of());
        byte[] raw = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(raw, raw.length - 8));
        assertThatThrownBy(() -> Safetensors.open(f)).isInstanceOf(HfFormatException.class)
                .hasMessageContaining(f.toString()).hasMessageContaining("'w'").hasMessageContaining("outside the data section");
    }

    @Test
    void headerLengthBeyondFile() throws Exception {
        Path f = raw(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).array());
        assertThatThrownBy(() -> Safetensors.open(f)).isInstanceOf(HfFormatException.class).hasMessageContaining("runs past the end");
    }

    @Test
    void hugeHeaderRefusedBeforeAllocating() throws Exception {
        Path f = raw(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(200_000_000L).array());
        assertThatThrownBy(() -> Safetensors.open(f)).isInstanceOf(HfFormatException.class).hasMessageContaining("header length 200000000");
    }

    @Test
    void tooShortFile() throws Exception {
        Path f = raw(new byte[]{1, 2, 3});
        assertThatThrownBy(() -> Safetensors.open(f)).isInstanceOf(HfFormatException.class).hasMessageContaining("at least 8 bytes");
    }

    @Test
    void nonJsonHeader() throws Exception {
        Path f = withHeader("{not json!", 0);
        assertThatThrownBy(() -> Safetensors.open(f)).isInstanceOf(HfFormatException.class).hasMessageContaining("not valid JSON");
    }

    @Test
    void unknownDtype() throws Exception {
        Path f = withHeader("{\"w\":{\"dtype\":\"F8_E4M3X\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        assertThatThrownBy(() -> Safetensors.open(f)).hasMessageContaining("'w'").hasMessageContaining("unknown dtype 'F8_E4M3X'");
    }

    @Test
    void shapeSizeMismatch() throws Exception {
        Path f = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
        assertThatThrownBy(() -> Safetensors.open(f)).hasMessageContaining("'w'").hasMessageContaining("needs 12 bytes");
    }

    @Test
    void overlappingTensors() throws Exception {
        Path f = withHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        assertThatThrownBy(() -> Safetensors.open(f)).hasMessageContaining("'a'").hasMessageContaining("'b'").hasMessageContaining("overlap");
    }

    @Test
    void outOfRangeAndNegativeOffsets() throws Exception {
        Path f = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8);
        assertThatThrownBy(() -> Safetensors.open(f)).hasMessageContaining("'w'").hasMessageContaining("data_offsets");
    }

    @Test
    void overflowingShape() throws Exception {
        Path f = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}}", 4);
        assertThatThrownBy(() -> Safetensors.open(f)).isInstanceOf(HfFormatException.class).hasMessageContaining("'w'");
    }

    @Test
    void failedWriteLeavesTheOldFileIntact() throws Exception {
        Path f = dir.resolve("keep.safetensors");
        SafetensorsWriter.write(f, Map.of("w", TensorBlob.ofFloats(new float[]{1}, 1)), Map.of());
        byte[] before = Files.readAllBytes(f);
        assertThatThrownBy(() -> AtomicFiles.write(f, out -> {
            out.write(new byte[10]);
            throw new java.io.IOException("disk full");
        })).hasMessageContaining("disk full");
        assertThat(Files.readAllBytes(f)).isEqualTo(before);
        try (var s = Files.list(dir)) {
            assertThat(s.filter(p -> p.getFileName().toString().endsWith(".tmp"))).isEmpty();
        }
    }

    private Path raw(byte[] bytes) throws Exception {
        Path f = Files.createTempFile(dir, "bad", ".safetensors");
        Files.write(f, bytes);
        return f;
    }

    private Path withHeader(String json, int dataBytes) throws Exception {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        return raw(b.array());
    }

    private static byte[] le(int n, java.util.function.Consumer<ByteBuffer> fill) {
        ByteBuffer b = ByteBuffer.allocate(n * 2 > 0 ? n * 2 : 2).order(ByteOrder.LITTLE_ENDIAN);
        fill.accept(b);
        return java.util.Arrays.copyOf(b.array(), b.position());
    }
}
