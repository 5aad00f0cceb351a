package dev.tune4j.hf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.*;

/**
 * Converts a llama2.c checkpoint ({@code run.c} legacy format) and its {@code tokenizer.bin} into a Hugging Face Llama
 * folder: config.json, generation_config.json, model.safetensors (q/k rows permuted from llama2.c's interleaved RoPE
 * pairs to HF's rotate-half layout), tokenizer.json (SentencePiece-style BPE with byte fallback, merges derived from
 * the piece scores the way transformers' SentencePieceExtractor does) and tokenizer_config.json.
 */
public final class Llama2cImport {
    private Llama2cImport() {}

    /** The seven int32 of the checkpoint header. {@code vocabSize} negative in the file means an untied classifier follows. */
    public record Header(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads, int vocabSize, boolean shared, int seqLen) {}

    public static void convert(Path model, Path tokenizerBin, Path outDir) throws IOException {
        Path tmp = AtomicFiles.tempDirBeside(outDir);
        try {
            Header h = writeModel(model, tmp);
            writeTokenizer(tokenizerBin, h.vocabSize(), h.seqLen(), tmp);
            AtomicFiles.publishDir(tmp, outDir);
        } finally {
            AtomicFiles.deleteTree(tmp);
        }
    }

    static Header readHeader(Path model, ByteBuffer b) {
        if (b.remaining() < 28) throw new HfFormatException(model, "not a llama2.c checkpoint: expected a 28-byte header, found " + b.remaining() + " bytes");
        int dim = b.getInt(), hidden = b.getInt(), layers = b.getInt(), heads = b.getInt(), kvHeads = b.getInt(), vocab = b.getInt(), seq = b.getInt();
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab == 0 || seq <= 0 || dim % heads != 0 || heads % kvHeads != 0)
            throw new HfFormatException(model, "implausible llama2.c header: dim=" + dim + " hidden_dim=" + hidden + " n_layers=" + layers
                    + " n_heads=" + heads + " n_kv_heads=" + kvHeads + " vocab_size=" + vocab + " seq_len=" + seq);
        return new Header(dim, hidden, layers, heads, kvHeads, Math.abs(vocab), vocab > 0, seq);
    }

    static Header writeModel(Path model, Path dir) throws IOException {
        ByteBuffer b;
        try (FileChannel ch = FileChannel.open(model, StandardOpenOption.READ)) {
            b = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size()).order(ByteOrder.LITTLE_ENDIAN);
        }
        Header h = readHeader(model, b);
        int headDim = h.dim() / h.nHeads(), kvDim = h.nKvHeads() * headDim, L = h.nLayers();
        long need = 28 + 4L * ((long) h.vocabSize() * h.dim() + 2L * L * h.dim() + (long) L * h.dim() * h.dim() * 2 + 2L * L * kvDim * h.dim()
                + 3L * L * h.dim() * h.hiddenDim() + h.dim() + (long) h.seqLen() * headDim + (h.shared() ? 0 : (long) h.vocabSize() * h.dim()));
        if (b.capacity() < need) throw new HfFormatException(model, "truncated: the header promises " + need + " bytes, the file has " + b.capacity());
        var t = new LinkedHashMap<String, TensorBlob>();
        float[] emb = read(b, h.vocabSize() * h.dim());
        t.put("model.embed_tokens.weight", TensorBlob.ofFloats(emb, h.vocabSize(), h.dim()));
        float[][] rmsAtt = perLayer(b, L, h.dim()), wq = perLayer(b, L, h.dim() * h.dim()), wk = perLayer(b, L, kvDim * h.dim()),
                wv = perLayer(b, L, kvDim * h.dim()), wo = perLayer(b, L, h.dim() * h.dim()), rmsFfn = perLayer(b, L, h.dim()),
                w1 = perLayer(b, L, h.hiddenDim() * h.dim()), w2 = perLayer(b, L, h.dim() * h.hiddenDim()), w3 = perLayer(b, L, h.hiddenDim() * h.dim());
        float[] rmsFinal = read(b, h.dim());
        b.position(b.position() + 4 * h.seqLen() * headDim); // freq_cis_real + imag (each seq_len × head_dim/2): recomputed by RoPE
        for (int i = 0; i < L; i++) {
            String p = "model.layers." + i + ".";
            t.put(p + "input_layernorm.weight", TensorBlob.ofFloats(rmsAtt[i], h.dim()));
            t.put(p + "self_attn.q_proj.weight", TensorBlob.ofFloats(permuteRope(wq[i], h.nHeads(), headDim, h.dim()), h.dim(), h.dim()));
            t.put(p + "self_attn.k_proj.weight", TensorBlob.ofFloats(permuteRope(wk[i], h.nKvHeads(), headDim, h.dim()), kvDim, h.dim()));
            t.put(p + "self_attn.v_proj.weight", TensorBlob.ofFloats(wv[i], kvDim, h.dim()));
            t.put(p + "self_attn.o_proj.weight", TensorBlob.ofFloats(wo[i], h.dim(), h.dim()));
            t.put(p + "post_attention_layernorm.weight", TensorBlob.ofFloats(rmsFfn[i], h.dim()));
            t.put(p + "mlp.gate_proj.weight", TensorBlob.ofFloats(w1[i], h.hiddenDim(), h.dim()));
            t.put(p + "mlp.down_proj.weight", TensorBlob.ofFloats(w2[i], h.dim(), h.hiddenDim()));
            t.put(p + "mlp.up_proj.weight", TensorBlob.ofFloats(w3[i], h.hiddenDim(), h.dim()));
        }
        t.put("model.norm.weight", TensorBlob.ofFloats(rmsFinal, h.dim()));
        if (!h.shared()) t.put("lm_head.weight", TensorBlob.ofFloats(read(b, h.vocabSize() * h.dim()), h.vocabSize(), h.dim()));
        SafetensorsWriter.write(dir.resolve("model.safetensors"), t, SafetensorsWriter.PT_METADATA);

        var config = new ModelConfig(ModelConfig.Arch.LLAMA, h.vocabSize(), h.dim(), h.hiddenDim(), L, h.nHeads(), h.nKvHeads(), headDim,
                1e-5, 10000.0, ModelConfig.RopeScaling.NONE, h.seqLen(), h.shared(), false, false, false, 0, 1, List.of(2), null, "float32");
        writeJson(dir.resolve("config.json"), config.toJson());
        var gen = new LinkedHashMap<String, Object>();
        gen.put("_from_model_config", true);
        gen.put("bos_token_id", 1);
        gen.put("eos_token_id", 2);
        gen.put("transformers_version", "4.44.2");
        writeJson(dir.resolve("generation_config.json"), gen);
        return h;
    }

    /**
     * llama2.c rotates interleaved pairs (0,1),(2,3)…; HF rotates the two halves of each head. Row h·hd + 2i + j moves
     * to h·hd + j·hd/2 + i (HF's {@code view(heads, hd/2, 2, dim).transpose(1, 2)}).
     */
    static float[] permuteRope(float[] w, int heads, int headDim, int cols) {
        float[] out = new float[w.length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < headDim / 2; i++)
                for (int j = 0; j < 2; j++)
                    System.arraycopy(w, (h * headDim + 2 * i + j) * cols, out, (h * headDim + j * headDim / 2 + i) * cols, cols);
        return out;
    }

    private static float[] read(ByteBuffer b, int n) {
        float[] v = new float[n];
        b.asFloatBuffer().get(v);
        b.position(b.position() + 4 * n);
        return v;
    }

    private static float[][] perLayer(ByteBuffer b, int layers, int n) {
        float[][] v = new float[layers][];
        for (int i = 0; i < layers; i++) v[i] = read(b, n);
        return v;
    }

    /** A llama2.c tokenizer.bin: pieces with SentencePiece's '▁' already turned into ' ', and their merge scores. */
    public record Vocab(String[] pieces, float[] scores) {}

    public static Vocab readVocab(Path file, int vocabSize) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        String[] pieces = new String[vocabSize];
        float[] scores = new float[vocabSize];
        try {
            b.getInt(); // max_token_length
            for (int i = 0; i < vocabSize; i++) {
                scores[i] = b.getFloat();
                int len = b.getInt();
                if (len < 0 || len > b.remaining()) throw new HfFormatException(file, "token " + i + ": byte length " + len + " runs past the end of the file");
                byte[] s = new byte[len];
                b.get(s);
                pieces[i] = new String(s, StandardCharsets.UTF_8);
            }
        } catch (java.nio.BufferUnderflowException e) {
            throw new HfFormatException(file, "truncated: expected " + vocabSize + " tokens (the model's vocab_size)");
        }
        return new Vocab(pieces, scores);
    }

    static void writeTokenizer(Path tokenizerBin, int vocabSize, int maxLen, Path dir) throws IOException {
        Vocab v = readVocab(tokenizerBin, vocabSize);
        String[] names = new String[vocabSize];
        var special = Map.of(0, "<unk>", 1, "<s>", 2, "</s>");
        for (int i = 0; i < vocabSize; i++)
            names[i] = special.containsKey(i) ? special.get(i) : SentencePieceTokenizer.isByte(v.pieces()[i]) ? v.pieces()[i] : v.pieces()[i].replace(' ', '\u2581');
        SentencePieceTokenizer.write(dir, names, v.scores(), maxLen);
    }

    static void writeJson(Path file, Object value) throws IOException {
        byte[] json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(value);
        AtomicFiles.write(file, out -> out.write(json));
    }
}
