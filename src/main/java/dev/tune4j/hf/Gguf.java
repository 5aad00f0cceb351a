package dev.tune4j.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.*;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.*;

/**
 * GGUF v3 (llama.cpp's format): header, typed key/value metadata, tensor infos (dims innermost first), then
 * 32-byte-aligned tensor data. {@link #export} writes a Llama/Mistral ("llama") or Qwen2 ("qwen2") model with the names
 * and q/k layout llama.cpp's converter produces, and the tokenizer's vocabulary; {@link #read} re-reads and validates.
 */
public final class Gguf {
    private Gguf() {}

    public static final int MAGIC = 0x46554747, VERSION = 3, ALIGNMENT = 32;

    /** ggml tensor types written here. */
    public enum Type {
        F32(0, 4, 1), F16(1, 2, 1), Q8_0(8, 34, 32);

        public final int id, blockBytes, blockSize;

        Type(int id, int blockBytes, int blockSize) {
            this.id = id;
            this.blockBytes = blockBytes;
            this.blockSize = blockSize;
        }

        static Type of(int id) {
            for (Type t : values()) if (t.id == id) return t;
            return null;
        }

        long bytes(long elements) {
            return elements / blockSize * blockBytes;
        }
    }

    // value types of the metadata
    static final int UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10;

    public record TensorEntry(String name, long[] dims, Type type, long offset) {}

    public record File(int version, Map<String, Object> metadata, List<TensorEntry> tensors, long dataStart, long size) {}

    // ---------------------------------------------------------------- export

    public static void export(Path modelDir, Path out, Type type) throws IOException {
        export(modelDir, out, type, (done, total) -> {});
    }

    /** @param progress told (tensors written, tensors in all) after each tensor: the CLI's progress bar */
    public static void export(Path modelDir, Path out, Type type, java.util.function.ObjLongConsumer<Long> progress) throws IOException {
        try (ModelFolder f = ModelFolder.open(modelDir)) {
            f.validate();
            if (f.bitsandbytes4bit())
                throw new HfFormatException(modelDir, "a bitsandbytes 4-bit checkpoint: export the unquantized model (GGUF has its own quantization: --dtype q8_0)");
            ModelConfig c = f.config();
            String arch = switch (c.arch()) {
                case QWEN2 -> "qwen2";
                default -> "llama";
            };
            var meta = new LinkedHashMap<String, Object>();
            meta.put("general.architecture", arch);
            meta.put("general.name", modelDir.toAbsolutePath().getFileName().toString());
            meta.put("general.alignment", u32(ALIGNMENT));
            meta.put("general.file_type", u32(switch (type) {
                case F32 -> 0;
                case F16 -> 1;
                case Q8_0 -> 7;
            }));
            meta.put(arch + ".context_length", u32(c.maxPositionEmbeddings()));
            meta.put(arch + ".embedding_length", u32(c.hiddenSize()));
            meta.put(arch + ".block_count", u32(c.numLayers()));
            meta.put(arch + ".feed_forward_length", u32(c.intermediateSize()));
            meta.put(arch + ".attention.head_count", u32(c.numHeads()));
            meta.put(arch + ".attention.head_count_kv", u32(c.numKvHeads()));
            meta.put(arch + ".attention.layer_norm_rms_epsilon", (float) c.rmsNormEps());
            meta.put(arch + ".rope.freq_base", (float) c.ropeTheta());
            meta.put(arch + ".rope.dimension_count", u32(c.headDim()));
            meta.put(arch + ".vocab_size", u32(c.vocabSize()));
            if (c.ropeScaling().type().equals("linear")) {
                meta.put(arch + ".rope.scaling.type", "linear");
                meta.put(arch + ".rope.scaling.factor", (float) c.ropeScaling().factor());
            }
            tokenizer(modelDir, c, meta);

            var tensors = new ArrayList<Object[]>(); // gguf name, hf name, shape
            for (String hf : c.expectedTensors().keySet()) tensors.add(new Object[]{ggufName(hf), hf, c.expectedTensors().get(hf)});
            Files.createDirectories(out.toAbsolutePath().getParent());
            AtomicFiles.removeStale(out.toAbsolutePath().getParent());
            Path tmp = AtomicFiles.stagingName(out, "tmp");
            try {
            try (var os = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 20))) {
                var w = new Writer(os);
                w.u32(MAGIC);
                w.u32(VERSION);
                w.u64(tensors.size());
                w.u64(meta.size());
                for (var e : meta.entrySet()) {
                    w.string(e.getKey());
                    w.value(e.getValue());
                }
                long offset = 0;
                var types = new ArrayList<Type>();
                for (Object[] t : tensors) {
                    long[] shape = (long[]) t[2];
                    Type tt = shape.length == 1 ? Type.F32 : type == Type.Q8_0 && shape[shape.length - 1] % 32 != 0 ? Type.F16 : type;
                    types.add(tt);
                    w.string((String) t[0]);
                    w.u32(shape.length);
                    for (int i = shape.length - 1; i >= 0; i--) w.u64(shape[i]);
                    w.u32(tt.id);
                    w.u64(offset);
                    offset = align(offset + tt.bytes(numel(shape)));
                }
                w.pad();
                for (int i = 0; i < tensors.size(); i++) {
                    Object[] t = tensors.get(i);
                    long[] shape = (long[]) t[2];
                    float[] v = f.floats((String) t[1]);
                    String hf = (String) t[1];
                    if (arch.equals("llama") && hf.endsWith("self_attn.q_proj.weight")) v = toGgmlRope(v, c.numHeads(), c.headDim(), (int) shape[1]);
                    if (arch.equals("llama") && hf.endsWith("self_attn.k_proj.weight")) v = toGgmlRope(v, c.numKvHeads(), c.headDim(), (int) shape[1]);
                    w.tensor(v, types.get(i));
                    w.pad();
                    progress.accept((long) i + 1, tensors.size());
                }
            }
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            read(tmp); // validate what was written before it takes the name
            Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(tmp); // only left when writing or validation failed
            }
        }
    }

    /** HF rotate-half rows → GGML's interleaved pairs (llama.cpp's permute): row h·hd + 2i + j ← h·hd + j·hd/2 + i. */
    static float[] toGgmlRope(float[] w, int heads, int headDim, int cols) {
        float[] out = new float[w.length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < headDim / 2; i++)
                for (int j = 0; j < 2; j++)
                    System.arraycopy(w, (h * headDim + j * headDim / 2 + i) * cols, out, (h * headDim + 2 * i + j) * cols, cols);
        return out;
    }

    static String ggufName(String hf) {
        if (hf.equals("model.embed_tokens.weight")) return "token_embd.weight";
        if (hf.equals("model.norm.weight")) return "output_norm.weight";
        if (hf.equals("lm_head.weight")) return "output.weight";
        String rest = hf.substring("model.layers.".length());
        String layer = rest.substring(0, rest.indexOf('.'));
        String part = rest.substring(layer.length() + 1);
        String mapped = switch (part.substring(0, part.lastIndexOf('.'))) {
            case "input_layernorm" -> "attn_norm";
            case "post_attention_layernorm" -> "ffn_norm";
            case "self_attn.q_proj" -> "attn_q";
            case "self_attn.k_proj" -> "attn_k";
            case "self_attn.v_proj" -> "attn_v";
            case "self_attn.o_proj" -> "attn_output";
            case "mlp.gate_proj" -> "ffn_gate";
            case "mlp.up_proj" -> "ffn_up";
            case "mlp.down_proj" -> "ffn_down";
            default -> throw new IllegalArgumentException("no GGUF name for " + hf);
        };
        return "blk." + layer + "." + mapped + part.substring(part.lastIndexOf('.'));
    }

    /**
     * tokenizer.json → llama.cpp's tokenizer keys: SentencePiece-style BPE with byte fallback becomes model "llama"
     * (tokens, scores by id order, types), byte-level BPE becomes "gpt2" (tokens, types, merges).
     */
    static void tokenizer(Path dir, ModelConfig c, Map<String, Object> meta) throws IOException {
        Path tj = dir.resolve("tokenizer.json");
        if (!Files.exists(tj)) return;
        var mapper = new ObjectMapper();
        JsonNode root = mapper.readTree(tj.toFile()), model = root.path("model");
        boolean spm = model.path("byte_fallback").asBoolean(false);
        String[] tokens = new String[c.vocabSize()];
        int[] types = new int[c.vocabSize()];
        model.path("vocab").properties().forEach(e -> {
            int id = e.getValue().asInt();
            if (id < tokens.length) {
                tokens[id] = e.getKey();
                types[id] = e.getKey().matches("<0x[0-9A-Fa-f]{2}>") ? 6 : 1;
            }
        });
        var special = new HashMap<String, Integer>();
        for (JsonNode a : root.path("added_tokens")) {
            int id = a.path("id").asInt();
            if (id >= tokens.length) continue;
            tokens[id] = a.path("content").asText();
            types[id] = a.path("special").asBoolean(false) ? 3 : 4;
            special.put(tokens[id], id);
        }
        float[] scores = new float[tokens.length];
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] == null) {
                tokens[i] = "[PAD" + i + "]";
                types[i] = 5;
            }
            scores[i] = types[i] == 1 ? -i : 0;
        }
        meta.put("tokenizer.ggml.model", spm ? "llama" : "gpt2");
        if (!spm) meta.put("tokenizer.ggml.pre", c.arch() == ModelConfig.Arch.QWEN2 ? "qwen2" : "llama-bpe");
        meta.put("tokenizer.ggml.tokens", List.of(tokens));
        if (spm) meta.put("tokenizer.ggml.scores", scores);
        meta.put("tokenizer.ggml.token_type", types);
        if (!spm) {
            var merges = new ArrayList<String>();
            for (JsonNode m : model.path("merges")) merges.add(m.isArray() ? m.get(0).asText() + " " + m.get(1).asText() : m.asText());
            meta.put("tokenizer.ggml.merges", merges);
        }
        if (c.bosTokenId() != null) meta.put("tokenizer.ggml.bos_token_id", u32(c.bosTokenId()));
        if (!c.eosTokenIds().isEmpty()) meta.put("tokenizer.ggml.eos_token_id", u32(c.eosTokenIds().getFirst()));
        Path tc = dir.resolve("tokenizer_config.json");
        if (Files.exists(tc)) {
            JsonNode cfg = mapper.readTree(tc.toFile());
            for (String role : List.of("bos", "eos", "unk", "pad")) {
                JsonNode t = cfg.path(role + "_token");
                String content = t.isObject() ? t.path("content").asText(null) : t.isTextual() ? t.asText() : null;
                if (content != null && special.containsKey(content))
                    meta.put("tokenizer.ggml." + (role.equals("unk") ? "unknown" : role.equals("pad") ? "padding" : role) + "_token_id", u32(special.get(content)));
            }
            if (cfg.has("add_bos_token")) meta.put("tokenizer.ggml.add_bos_token", cfg.get("add_bos_token").asBoolean());
            if (cfg.path("chat_template").isTextual()) meta.put("tokenizer.chat_template", cfg.get("chat_template").asText());
        }
    }

    /** Marks an int as a GGUF uint32 (plain Integers are written as int32). */
    record U32(long value) {}

    static U32 u32(long v) {
        return new U32(v);
    }

    static long align(long x) {
        return (x + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** Little-endian GGUF writing. */
    static final class Writer {
        final DataOutputStream out;
        long pos;

        Writer(DataOutputStream out) {
            this.out = out;
        }

        void u32(long v) throws IOException {
            out.writeInt(Integer.reverseBytes((int) v));
            pos += 4;
        }

        void u64(long v) throws IOException {
            out.writeLong(Long.reverseBytes(v));
            pos += 8;
        }

        void f32(float v) throws IOException {
            u32(Float.floatToRawIntBits(v) & 0xffffffffL);
        }

        void string(String s) throws IOException {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            out.write(b);
            pos += b.length;
        }

        void value(Object v) throws IOException {
            switch (v) {
                case U32 u -> {
                    u32(UINT32);
                    u32(u.value());
                }
                case Integer i -> {
                    u32(INT32);
                    u32(i);
                }
                case Float f -> {
                    u32(FLOAT32);
                    f32(f);
                }
                case Boolean b -> {
                    u32(BOOL);
                    out.write(b ? 1 : 0);
                    pos++;
                }
                case String s -> {
                    u32(STRING);
                    string(s);
                }
                case float[] a -> {
                    u32(ARRAY);
                    u32(FLOAT32);
                    u64(a.length);
                    for (float x : a) f32(x);
                }
                case int[] a -> {
                    u32(ARRAY);
                    u32(INT32);
                    u64(a.length);
                    for (int x : a) u32(x);
                }
                case List<?> l -> {
                    u32(ARRAY);
                    u32(STRING);
                    u64(l.size());
                    for (Object o : l) string(o.toString());
                }
                default -> throw new IllegalArgumentException("no GGUF type for " + v.getClass());
            }
        }

        void pad() throws IOException {
            while (pos % ALIGNMENT != 0) {
                out.write(0);
                pos++;
            }
        }

        void tensor(float[] v, Type t) throws IOException {
            switch (t) {
                case F32 -> {
                    for (float x : v) f32(x);
                }
                case F16 -> {
                    for (float x : v) {
                        short h = Half.floatToF16(x);
                        out.write(h & 0xff);
                        out.write((h >> 8) & 0xff);
                        pos += 2;
                    }
                }
                case Q8_0 -> {
                    for (int b = 0; b < v.length; b += 32) {
                        float amax = 0;
                        for (int i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(v[b + i]));
                        float d = amax / 127f, id = d == 0 ? 0 : 1f / d;
                        short h = Half.floatToF16(d);
                        out.write(h & 0xff);
                        out.write((h >> 8) & 0xff);
                        for (int i = 0; i < 32; i++) out.write(Math.round(v[b + i] * id));
                        pos += 34;
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- read + validate

    /** Parses and checks a GGUF file: magic, version, metadata, tensor infos, alignment and bounds of every tensor. */
    public static File read(Path file) throws IOException {
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            MemorySegment s = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            var r = new Reader(s, file);
            if (r.u32() != MAGIC) throw new HfFormatException(file, "not a GGUF file (bad magic)");
            int version = (int) r.u32();
            if (version != VERSION) throw new HfFormatException(file, "GGUF version " + version + ", expected 3");
            long nTensors = r.u64(), nKv = r.u64();
            if (nTensors > 1_000_000 || nKv > 1_000_000) throw new HfFormatException(file, "implausible counts: " + nTensors + " tensors, " + nKv + " keys");
            var meta = new LinkedHashMap<String, Object>();
            for (long i = 0; i < nKv; i++) {
                String k = r.string();
                meta.put(k, r.value((int) r.u32()));
            }
            long alignment = meta.get("general.alignment") instanceof Long a ? a : ALIGNMENT;
            var infos = new ArrayList<TensorEntry>();
            for (long i = 0; i < nTensors; i++) {
                String name = r.string();
                int nd = (int) r.u32();
                if (nd < 1 || nd > 4) throw new HfFormatException(file, "tensor '" + name + "': " + nd + " dimensions");
                long[] dims = new long[nd];
                for (int d = 0; d < nd; d++) dims[d] = r.u64();
                int typeId = (int) r.u32();
                Type t = Type.of(typeId);
                if (t == null) throw new HfFormatException(file, "tensor '" + name + "': unsupported ggml type " + typeId);
                long off = r.u64();
                if (off % alignment != 0) throw new HfFormatException(file, "tensor '" + name + "': offset " + off + " not aligned to " + alignment);
                infos.add(new TensorEntry(name, dims, t, off));
            }
            long dataStart = (r.pos + alignment - 1) / alignment * alignment;
            var sorted = new ArrayList<>(infos);
            sorted.sort(Comparator.comparingLong(TensorEntry::offset));
            long end = 0;
            for (TensorEntry t : sorted) {
                if (t.offset() < end) throw new HfFormatException(file, "tensor '" + t.name() + "' overlaps the previous one");
                if (t.dims()[0] % t.type().blockSize != 0) throw new HfFormatException(file, "tensor '" + t.name() + "': row of " + t.dims()[0] + " not a multiple of the block size");
                end = t.offset() + t.type().bytes(numel(t.dims()));
                if (dataStart + end > size) throw new HfFormatException(file, "tensor '" + t.name() + "' runs past the end of the file");
            }
            return new File(version, meta, infos, dataStart, size);
        }
    }

    /** Dequantized values of one tensor (for checks). */
    public static float[] tensor(Path file, File g, String name) throws IOException {
        TensorEntry t = g.tensors().stream().filter(x -> x.name().equals(name)).findFirst()
                .orElseThrow(() -> new HfFormatException(file, "no tensor '" + name + "'"));
        int n = (int) numel(t.dims());
        float[] out = new float[n];
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment s = ch.map(FileChannel.MapMode.READ_ONLY, g.dataStart() + t.offset(), t.type().bytes(n), arena);
            var le16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
            switch (t.type()) {
                case F32 -> MemorySegment.copy(s, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, out, 0, n);
                case F16 -> { for (int i = 0; i < n; i++) out[i] = Half.f16ToFloat(s.get(le16, 2L * i)); }
                case Q8_0 -> {
                    for (int b = 0; b < n / 32; b++) {
                        float d = Half.f16ToFloat(s.get(le16, 34L * b));
                        for (int i = 0; i < 32; i++) out[b * 32 + i] = d * s.get(ValueLayout.JAVA_BYTE, 34L * b + 2 + i);
                    }
                }
            }
        }
        return out;
    }

    static final class Reader {
        final MemorySegment s;
        final Path file;
        long pos;

        Reader(MemorySegment s, Path file) {
            this.s = s;
            this.file = file;
        }

        void need(long n) {
            if (pos + n > s.byteSize()) throw new HfFormatException(file, "truncated at byte " + pos);
        }

        long u32() {
            need(4);
            long v = s.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos) & 0xffffffffL;
            pos += 4;
            return v;
        }

        long u64() {
            need(8);
            long v = s.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos);
            pos += 8;
            return v;
        }

        String string() {
            long n = u64();
            if (n < 0 || n > 100_000_000) throw new HfFormatException(file, "string of " + n + " bytes at byte " + pos);
            need(n);
            String v = new String(s.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            pos += n;
            return v;
        }

        Object value(int type) {
            return switch (type) {
                case 0, 1 -> {
                    need(1);
                    yield (long) s.get(ValueLayout.JAVA_BYTE, pos++);
                }
                case 2, 3 -> {
                    need(2);
                    long v = s.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos);
                    pos += 2;
                    yield v;
                }
                case UINT32 -> u32();
                case INT32 -> (long) (int) u32();
                case FLOAT32 -> (double) Float.intBitsToFloat((int) u32());
                case BOOL -> {
                    need(1);
                    yield s.get(ValueLayout.JAVA_BYTE, pos++) != 0;
                }
                case STRING -> string();
                case ARRAY -> {
                    int et = (int) u32();
                    long n = u64();
                    if (n < 0 || n > 50_000_000) throw new HfFormatException(file, "array of " + n + " elements");
                    var l = new ArrayList<Object>((int) Math.min(n, 1 << 20));
                    for (long i = 0; i < n; i++) l.add(value(et));
                    yield l;
                }
                case UINT64, 11 -> u64();
                case 12 -> Double.longBitsToDouble(u64());
                default -> throw new HfFormatException(file, "unknown metadata type " + type + " at byte " + pos);
            };
        }
    }
}
