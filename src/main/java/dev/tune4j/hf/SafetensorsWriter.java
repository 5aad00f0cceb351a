package dev.tune4j.hf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;

/**
 * Writes safetensors files the way the Rust writer does: header padded with spaces to a multiple of 8 bytes so every
 * tensor starts 8-byte aligned, tensors ordered by element size (largest first) then name. Every file is written to a
 * temporary sibling, forced to disk and renamed, so a failed write never leaves a half file under the final name.
 */
public final class SafetensorsWriter {
    private SafetensorsWriter() {}

    public static final Map<String, String> PT_METADATA = Map.of("format", "pt");

    public static void write(Path file, Map<String, TensorBlob> tensors, Map<String, String> metadata) throws IOException {
        var names = new ArrayList<>(tensors.keySet());
        names.sort(Comparator.<String>comparingInt(n -> -tensors.get(n).dtype().bytes).thenComparing(n -> n));
        var infos = new ArrayList<TensorInfo>();
        long offset = 0;
        for (String n : names) {
            TensorBlob b = tensors.get(n);
            infos.add(new TensorInfo(n, b.dtype(), b.shape(), offset, offset + b.data().length));
            offset += b.data().length;
        }
        byte[] json = new ObjectMapper().writeValueAsString(Safetensors.headerJson(infos, metadata)).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] header = Arrays.copyOf(json, padded);
        Arrays.fill(header, json.length, padded, (byte) ' ');
        AtomicFiles.write(file, out -> {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
            out.write(header);
            for (String n : names) out.write(tensors.get(n).data());
        });
    }

    /**
     * Writes {@code model.safetensors} when everything fits in {@code maxShardBytes}, else
     * {@code model-0000k-of-0000n.safetensors} shards plus {@code model.safetensors.index.json}, as transformers'
     * {@code save_pretrained(max_shard_size=...)} does (tensors in name order, a new shard when the next would overflow).
     */
    public static List<Path> writeSharded(Path dir, String baseName, Map<String, TensorBlob> tensors, long maxShardBytes) throws IOException {
        Files.createDirectories(dir);
        var names = new ArrayList<>(tensors.keySet());
        Collections.sort(names);
        var shards = new ArrayList<LinkedHashMap<String, TensorBlob>>();
        long current = 0, total = 0;
        for (String n : names) {
            TensorBlob b = tensors.get(n);
            if (shards.isEmpty() || (current + b.data().length > maxShardBytes && current > 0)) {
                shards.add(new LinkedHashMap<>());
                current = 0;
            }
            shards.getLast().put(n, b);
            current += b.data().length;
            total += b.data().length;
        }
        if (shards.isEmpty()) shards.add(new LinkedHashMap<>());
        var written = new ArrayList<Path>();
        if (shards.size() == 1) {
            Path p = dir.resolve(baseName + ".safetensors");
            write(p, shards.getFirst(), PT_METADATA);
            written.add(p);
            return written;
        }
        var weightMap = new TreeMap<String, String>();
        for (int i = 0; i < shards.size(); i++) {
            String fname = String.format("%s-%05d-of-%05d.safetensors", baseName, i + 1, shards.size());
            write(dir.resolve(fname), shards.get(i), PT_METADATA);
            written.add(dir.resolve(fname));
            for (String n : shards.get(i).keySet()) weightMap.put(n, fname);
        }
        var index = new LinkedHashMap<String, Object>();
        index.put("metadata", Map.of("total_size", total));
        index.put("weight_map", weightMap);
        byte[] json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(index);
        Path idx = dir.resolve(baseName + ".safetensors.index.json");
        AtomicFiles.write(idx, out -> out.write(json));
        written.add(idx);
        return written;
    }
}
