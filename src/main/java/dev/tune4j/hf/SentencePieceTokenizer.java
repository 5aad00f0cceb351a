package dev.tune4j.hf;

import java.io.IOException;
import java.nio.file.Path;
import java.util.*;

/**
 * A Llama-2-style (SentencePiece BPE, byte fallback) tokenizer in Hugging Face's tokenizer.json form: '▁' marks spaces
 * and a '▁' is prepended to the text, unknown characters fall back to &lt;0xXX&gt; byte pieces, BOS is added by the
 * post-processor. Merges are derived from piece scores.
 */
public final class SentencePieceTokenizer {
    private SentencePieceTokenizer() {}

    static boolean isByte(String piece) {
        return piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">");
    }

    /**
     * Writes tokenizer.json and tokenizer_config.json for a Llama-2-style tokenizer.
     *
     * @param names  HF piece names by id: 0 = &lt;unk&gt;, 1 = &lt;s&gt;, 2 = &lt;/s&gt;, byte pieces "&lt;0xXX&gt;", '▁' for space
     * @param scores merge priority of each piece (higher merges first)
     */
    public static void write(Path dir, String[] names, float[] scores, int maxLen) throws IOException {
        var vocab = new LinkedHashMap<String, Integer>();
        for (int i = 0; i < names.length; i++) vocab.putIfAbsent(names[i], i);
        var root = new LinkedHashMap<String, Object>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        var added = new ArrayList<Map<String, Object>>();
        for (int i = 0; i < 3; i++) {
            var a = new LinkedHashMap<String, Object>();
            a.put("id", i);
            a.put("content", names[i]);
            a.put("single_word", false);
            a.put("lstrip", false);
            a.put("rstrip", false);
            a.put("normalized", false);
            a.put("special", true);
            added.add(a);
        }
        root.put("added_tokens", added);
        root.put("normalizer", Map.of("type", "Sequence", "normalizers", List.of(
                Map.of("type", "Prepend", "prepend", "\u2581"),
                Map.of("type", "Replace", "pattern", Map.of("String", " "), "content", "\u2581"))));
        root.put("pre_tokenizer", null);
        var bos = Map.of("SpecialToken", Map.of("id", "<s>", "type_id", 0));
        root.put("post_processor", Map.of("type", "TemplateProcessing",
                "single", List.of(bos, Map.of("Sequence", Map.of("id", "A", "type_id", 0))),
                "pair", List.of(bos, Map.of("Sequence", Map.of("id", "A", "type_id", 0)),
                        Map.of("SpecialToken", Map.of("id", "<s>", "type_id", 1)), Map.of("Sequence", Map.of("id", "B", "type_id", 1))),
                "special_tokens", Map.of("<s>", Map.of("id", "<s>", "ids", List.of(1), "tokens", List.of("<s>")))));
        root.put("decoder", Map.of("type", "Sequence", "decoders", List.of(
                Map.of("type", "Replace", "pattern", Map.of("String", "\u2581"), "content", " "),
                Map.of("type", "ByteFallback"), Map.of("type", "Fuse"),
                Map.of("type", "Strip", "content", " ", "start", 1, "stop", 0))));
        var model = new LinkedHashMap<String, Object>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", "<unk>");
        model.put("continuing_subword_prefix", null);
        model.put("end_of_word_suffix", null);
        model.put("fuse_unk", true);
        model.put("byte_fallback", true);
        model.put("vocab", vocab);
        model.put("merges", merges(names, scores, vocab));
        root.put("model", model);
        Llama2cImport.writeJson(dir.resolve("tokenizer.json"), root);

        var cfg = new LinkedHashMap<String, Object>();
        cfg.put("add_bos_token", true);
        cfg.put("add_eos_token", false);
        cfg.put("bos_token", "<s>");
        cfg.put("eos_token", "</s>");
        cfg.put("unk_token", "<unk>");
        cfg.put("pad_token", null);
        cfg.put("clean_up_tokenization_spaces", false);
        cfg.put("legacy", true);
        cfg.put("model_max_length", maxLen);
        cfg.put("tokenizer_class", "LlamaTokenizer");
        Llama2cImport.writeJson(dir.resolve("tokenizer_config.json"), cfg);
    }

    /**
     * BPE merges from piece scores: every split of a piece into two pieces of the vocabulary is a merge; merges rank by
     * the merged piece's score (highest first), ties by the ids of the two halves — transformers' SentencePieceExtractor.
     */
    static List<String> merges(String[] names, float[] scores, Map<String, Integer> vocab) {
        record Merge(String left, String right, float score, int l, int r) {}
        var all = new ArrayList<Merge>();
        for (int id = 3; id < names.length; id++) {
            String piece = names[id];
            if (isByte(piece)) continue;
            int[] cps = piece.codePoints().toArray();
            var local = new ArrayList<Merge>();
            for (int k = 1; k < cps.length; k++) {
                String l = new String(cps, 0, k), r = new String(cps, k, cps.length - k);
                Integer li = vocab.get(l), ri = vocab.get(r);
                if (li != null && ri != null && li >= 3 && ri >= 3) local.add(new Merge(l, r, scores[id], li, ri));
            }
            local.sort(Comparator.comparingInt(Merge::l).thenComparingInt(Merge::r));
            all.addAll(local);
        }
        all.sort((a, b) -> Float.compare(b.score(), a.score())); // stable: ties keep the order above
        var out = new ArrayList<String>(all.size());
        for (Merge m : all) out.add(m.left() + " " + m.right());
        return out;
    }

}
