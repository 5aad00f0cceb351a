package dev.tune4j.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.*;

/**
 * A memory-mapped safetensors file (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
 * N bytes of JSON header, then the tensor bytes. The whole file is mapped, so files of any size open without heap cost;
 * every header entry is validated against the file before any tensor is read, so a corrupt or hostile file fails with a
 * message naming the file and tensor instead of a crash.
 */
public final class Safetensors implements AutoCloseable {
    /** Headers larger than this are refused (the Rust reader uses the same limit). */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path file;
    private final Arena arena;
    private final MemorySegment data; // the bytes after the header
    private final LinkedHashMap<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private Safetensors(Path file, Arena arena, MemorySegment data, LinkedHashMap<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static Safetensors open(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new HfFormatException(file, "not a safetensors file: expected at least 8 bytes (header length), found " + size);
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long n = all.get(I64, 0);
            if (n < 2 || n > MAX_HEADER_BYTES)
                throw new HfFormatException(file, "header length " + n + " is outside [2, " + MAX_HEADER_BYTES + "] bytes");
            if (8 + n > size)
                throw new HfFormatException(file, "header length " + n + " runs past the end of the file (" + size + " bytes)");
            byte[] header = all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = all.asSlice(8 + n);
            var meta = new LinkedHashMap<String, String>();
            var tensors = parseHeader(file, header, data.byteSize(), meta);
            return new Safetensors(file, arena, data, tensors, meta);
        } catch (IOException e) {
            arena.close();
            throw new HfFormatException(file, "cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static LinkedHashMap<String, TensorInfo> parseHeader(Path file, byte[] header, long dataBytes, Map<String, String> meta) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(new String(header, StandardCharsets.UTF_8).stripTrailing());
        } catch (IOException e) {
            throw new HfFormatException(file, "header is not valid JSON: " + (e instanceof com.fasterxml.jackson.core.JsonProcessingException j ? j.getOriginalMessage() : e.getMessage()));
        }
        if (root == null || !root.isObject()) throw new HfFormatException(file, "header must be a JSON object");
        var out = new LinkedHashMap<String, TensorInfo>();
        for (var it = root.properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) throw new HfFormatException(file, "__metadata__ must be an object of strings");
                v.properties().forEach(m -> meta.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            String where = "tensor '" + name + "'";
            if (!v.isObject()) throw new HfFormatException(file, where + ": expected an object with dtype, shape, data_offsets");
            DType dtype = DType.parse(v.path("dtype").asText(""));
            if (dtype == null) throw new HfFormatException(file, where + ": unknown dtype '" + v.path("dtype").asText() + "'");
            JsonNode shapeNode = v.path("shape"), off = v.path("data_offsets");
            if (!shapeNode.isArray()) throw new HfFormatException(file, where + ": shape must be a list of integers");
            long[] shape = new long[shapeNode.size()];
            long numel = 1;
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = shapeNode.get(i);
                if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0)
                    throw new HfFormatException(file, where + ": shape entry " + d + " is not a non-negative integer");
                shape[i] = d.asLong();
                numel = Math.multiplyHigh(numel, shape[i]) != 0 ? -1 : numel * shape[i];
                if (numel < 0) throw new HfFormatException(file, where + ": shape " + shapeNode + " overflows");
            }
            if (!off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber() || !off.get(1).isIntegralNumber())
                throw new HfFormatException(file, where + ": data_offsets must be [begin, end]");
            long begin = off.get(0).asLong(), end = off.get(1).asLong();
            if (begin < 0 || end < begin || end > dataBytes)
                throw new HfFormatException(file, where + ": data_offsets [" + begin + ", " + end + "] outside the data section of " + dataBytes + " bytes");
            if (numel > Long.MAX_VALUE / dtype.bytes || numel * dtype.bytes != end - begin)
                throw new HfFormatException(file, where + ": shape " + shapeNode + " of " + dtype + " needs " + (numel * dtype.bytes)
                        + " bytes, data_offsets give " + (end - begin));
            out.put(name, new TensorInfo(name, dtype, shape, begin, end));
        }
        // no two tensors may share bytes
        var sorted = new ArrayList<>(out.values());
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        for (int i = 1; i < sorted.size(); i++) {
            TensorInfo a = sorted.get(i - 1), b = sorted.get(i);
            if (b.begin() < a.end() && b.byteSize() > 0 && a.byteSize() > 0)
                throw new HfFormatException(file, "tensors '" + a.name() + "' and '" + b.name() + "' overlap: ["
                        + a.begin() + ", " + a.end() + ") and [" + b.begin() + ", " + b.end() + ")");
        }
        return out;
    }

    public Path file() {
        return file;
    }

    public Map<String, String> metadata() {
        return Collections.unmodifiableMap(metadata);
    }

    public Collection<TensorInfo> tensors() {
        return Collections.unmodifiableCollection(tensors.values());
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) throw new HfFormatException(file, "no tensor named '" + name + "'");
        return t;
    }

    /** The raw little-endian bytes of a tensor, as a view of the mapping (valid until close). */
    public MemorySegment bytes(String name) {
        TensorInfo t = info(name);
        // a slice's address of an unmapped file would read freed memory natively (a crash, not an exception)
        if (!arena.scope().isAlive()) throw new IllegalStateException(file + " is closed: tensor '" + name + "' was read after close()");
        return data.asSlice(t.begin(), t.byteSize());
    }

    /** Any float or integer tensor converted to fp32. */
    public float[] floats(String name) {
        TensorInfo t = info(name);
        MemorySegment s = bytes(name);
        int n = Math.toIntExact(t.numel());
        float[] out = new float[n];
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(s, F32, 0, out, 0, n);
            case F64 -> { for (int i = 0; i < n; i++) out[i] = (float) s.getAtIndex(F64, i); }
            case BF16 -> { for (int i = 0; i < n; i++) out[i] = Half.bf16ToFloat(s.getAtIndex(I16, i)); }
            case F16 -> { for (int i = 0; i < n; i++) out[i] = Half.f16ToFloat(s.getAtIndex(I16, i)); }
            case I64 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I64, i); }
            case I32 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I32, i); }
            case I16 -> { for (int i = 0; i < n; i++) out[i] = s.getAtIndex(I16, i); }
            case I8 -> { for (int i = 0; i < n; i++) out[i] = s.get(ValueLayout.JAVA_BYTE, i); }
            case U8, BOOL -> { for (int i = 0; i < n; i++) out[i] = s.get(ValueLayout.JAVA_BYTE, i) & 0xff; }
        }
        return out;
    }

    /** An integer (or bool) tensor widened to long; float tensors are refused rather than truncated. */
    public long[] longs(String name) {
        TensorInfo t = info(name);
        if (t.dtype().isFloat()) throw new HfFormatException(file, "tensor '" + name + "': expected an integer dtype, found " + t.dtype());
        MemorySegment s = bytes(name);
        int n = Math.toIntExact(t.numel());
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = switch (t.dtype()) {
                case I64 -> s.getAtIndex(I64, i);
                case I32 -> s.getAtIndex(I32, i);
                case I16 -> s.getAtIndex(I16, i);
                case I8 -> s.get(ValueLayout.JAVA_BYTE, i);
                default -> s.get(ValueLayout.JAVA_BYTE, i) & 0xff;
            };
        }
        return out;
    }

    @Override
    public void close() {
        arena.close();
    }

    /** The header a writer produces: entries in the given order, with offsets, as a JSON object. */
    static ObjectNode headerJson(List<TensorInfo> infos, Map<String, String> metadata) {
        ObjectNode root = new ObjectMapper().createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        for (TensorInfo t : infos) {
            ObjectNode o = root.putObject(t.name());
            o.put("dtype", t.dtype().name());
            var sh = o.putArray("shape");
            for (long d : t.shape()) sh.add(d);
            var off = o.putArray("data_offsets");
            off.add(t.begin());
            off.add(t.end());
        }
        return root;
    }
}
