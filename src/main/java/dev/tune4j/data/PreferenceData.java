package dev.tune4j.data;

import dev.tune4j.hf.UserError;
import dev.tune4j.data.Format.Message;
import dev.tune4j.text.Tokenizer;

import java.util.*;
import java.util.stream.Stream;

/**
 * Preference data loaded and tokenized as TRL 1.9's DPOTrainer/KTOTrainer prepare it (trl/trainer/dpo_trainer.py
 * _prepare_dataset): with a chat template, prompt = template(prompt, add_generation_prompt) and a completion = the
 * tokens of template(prompt + completion) after the prompt's tokens; plain text (the Alpaca layout, HH-RLHF's own
 * transcript) is tokenized with special tokens (BOS) the same way and EOS is appended to each completion. Pre-tokenized
 * rows are taken as given. Then the length rules, and a deterministic split.
 */
public final class PreferenceData {
    public final List<PreferencePair> train, val;
    public final List<KtoExample> kTrain, kVal;
    public final boolean unpaired;
    public final PreferenceFormat format;
    /** Records read, rows dropped because the prompt alone fills max length, rows whose completions were cut. */
    public final int rows, dropped, truncated;
    /** Skipped bad rows (file, line, field) and rows whose prompt tokens are not a prefix of prompt + completion. */
    public final List<String> warnings;
    private final int skipped;

    private PreferenceData(List<?> train, List<?> val, PreferenceFormat format, int rows, int dropped, int truncated, List<String> warnings, int skipped) {
        this.unpaired = format.unpaired();
        this.train = unpaired ? List.of() : cast(train, PreferencePair.class);
        this.val = unpaired ? List.of() : cast(val, PreferencePair.class);
        this.kTrain = unpaired ? cast(train, KtoExample.class) : List.of();
        this.kVal = unpaired ? cast(val, KtoExample.class) : List.of();
        this.format = format;
        this.rows = rows;
        this.dropped = dropped;
        this.truncated = truncated;
        this.warnings = List.copyOf(warnings);
        this.skipped = skipped;
    }

    private static <T> List<T> cast(List<?> l, Class<T> c) {
        return l.stream().map(c::cast).toList();
    }

    /**
     * @param tok the model's tokenizer; may be null for pre-tokenized data
     * @param eos the id appended to plain-text completions; -1 without a tokenizer
     */
    public static PreferenceData load(PreferenceDataConfig c, Tokenizer tok, long eos) {
        var loader = new Loader(c, tok, eos);
        var read = DataFiles.read(c.data(), c.skipBadRows());
        loader.skip(read.skipped());
        PreferenceFormat format = c.format() != null ? c.format() : PreferenceFormat.detect(read.rows().getFirst());
        List<Object> all = loader.encodeAll(read.rows(), format);
        if (all.isEmpty())
            throw new DataException(c.data(), "", "no usable " + (format.unpaired() ? "examples" : "pairs") + " (" + loader.skipped + " skipped, " + loader.dropped + " dropped: prompt fills max_seq_len " + c.maxSeqLen() + ")");
        List<Object> train, val;
        if (c.valFile() != null) {
            var v = DataFiles.read(c.valFile(), c.skipBadRows());
            loader.skip(v.skipped());
            PreferenceFormat vf = c.format() != null ? c.format() : PreferenceFormat.detect(v.rows().getFirst());
            if (vf.unpaired() != format.unpaired())
                throw new DataException(c.valFile(), "", "holds " + (vf.unpaired() ? "unpaired (KTO)" : "paired") + " data but " + c.data().getFileName() + " holds " + (format.unpaired() ? "unpaired (KTO)" : "paired") + " data");
            train = all;
            val = loader.encodeAll(v.rows(), vf);
        } else {
            // Dataset's rule: shuffle with the seed, hold out the first round(n · ratio) (at least one when asked); the
            // training examples stay in file order (the training loop shuffles)
            var order = new ArrayList<Integer>();
            for (int i = 0; i < all.size(); i++) order.add(i);
            Collections.shuffle(order, new Random(c.seed()));
            int nVal = c.valRatio() == 0 || all.size() < 2 ? 0 : Math.max(1, (int) Math.round(all.size() * c.valRatio()));
            var held = new HashSet<>(order.subList(0, nVal));
            val = order.subList(0, nVal).stream().map(all::get).toList();
            train = new ArrayList<>();
            for (int i = 0; i < all.size(); i++) if (!held.contains(i)) train.add(all.get(i));
        }
        return new PreferenceData(train, val, format, read.rows().size(), loader.dropped, loader.truncated, loader.warnings, loader.skipped);
    }

    public String summary() {
        String what = unpaired ? "unpaired examples" : "pairs";
        int nTrain = unpaired ? kTrain.size() : train.size(), nVal = unpaired ? kVal.size() : val.size();
        String balance = unpaired ? String.format(" (%d desirable, %d undesirable)", Stream.concat(kTrain.stream(), kVal.stream()).filter(KtoExample::desirable).count(),
                Stream.concat(kTrain.stream(), kVal.stream()).filter(e -> !e.desirable()).count()) : "";
        return String.format("%d records (%s) → %d train + %d validation %s%s; %d dropped (prompt fills max length), %d truncated, %d skipped",
                rows, format.name().toLowerCase(), nTrain, nVal, what, balance, dropped, truncated, skipped);
    }

    /** Reads rows into pairs or KTO examples, counting what it drops, cuts and skips. */
    private static final class Loader {
        final PreferenceDataConfig c;
        final Tokenizer tok;
        final long eos;
        final List<String> warnings = new ArrayList<>();
        int dropped, truncated, skipped;

        Loader(PreferenceDataConfig c, Tokenizer tok, long eos) {
            this.c = c;
            this.tok = tok;
            this.eos = eos;
        }

        void skip(List<String> bad) {
            warnings.addAll(bad);
            skipped += bad.size();
        }

        List<Object> encodeAll(List<Row> rows, PreferenceFormat f) {
            if (!f.pretokenized()) {
                if (tok == null) throw new UserError("preference format " + f.name().toLowerCase() + " needs a tokenizer (only tokenized/kto_tokenized rows do not)");
                if (c.promptStyle() == Encoder.PromptStyle.TEMPLATE && tok.chatTemplate().isEmpty())
                    throw new UserError("the tokenizer has no chat_template: use --prompt-style alpaca");
                if (c.promptStyle() == Encoder.PromptStyle.ALPACA && eos < 0) throw new UserError("the alpaca prompt style needs the EOS id to end completions");
            }
            var out = new ArrayList<Object>();
            for (Row r : rows) {
                long[][] parts; // prompt, completions...
                Boolean label = null;
                try {
                    if (f == PreferenceFormat.TOKENIZED) parts = new long[][]{PreferenceFormat.ids(r, "prompt_ids", true), PreferenceFormat.ids(r, "chosen_ids", false), PreferenceFormat.ids(r, "rejected_ids", false)};
                    else if (f == PreferenceFormat.KTO_TOKENIZED) {
                        parts = new long[][]{PreferenceFormat.ids(r, "prompt_ids", true), PreferenceFormat.ids(r, "completion_ids", false)};
                        label = PreferenceFormat.label(r);
                    } else {
                        var s = f.read(r);
                        parts = tokenize(r, s);
                        label = s.label();
                    }
                } catch (DataException e) {
                    if (!c.skipBadRows()) throw e;
                    skip(List.of(e.getMessage()));
                    continue;
                }
                if (!fit(parts)) continue;
                out.add(f.unpaired() ? new KtoExample(parts[0], parts[1], label) : new PreferencePair(parts[0], parts[1], parts[2]));
            }
            return out;
        }

        /**
         * TRL 1.9's length rule (DataCollatorForPreference, truncation_mode="keep_start"; _prepare_dataset's filter): prompt +
         * completion keeps its first maxSeqLen tokens, and a row whose prompt alone has ≥ maxSeqLen tokens is dropped (it
         * would have no completion token left). Before that, maxPromptLen keeps the prompt's last tokens, as TRL ≤ 0.19's
         * max_prompt_length did ({@code prompt_input_ids[-max_prompt_length:]}).
         */
        boolean fit(long[][] parts) {
            if (c.maxPromptLen() != null && parts[0].length > c.maxPromptLen())
                parts[0] = Arrays.copyOfRange(parts[0], parts[0].length - c.maxPromptLen(), parts[0].length);
            int room = c.maxSeqLen() - parts[0].length;
            if (room <= 0) {
                dropped++;
                return false;
            }
            boolean cut = false;
            for (int i = 1; i < parts.length; i++)
                if (parts[i].length > room) {
                    parts[i] = Arrays.copyOf(parts[i], room);
                    cut = true;
                }
            if (cut) truncated++;
            return true;
        }

        /** Prompt ids, then the ids of each completion (chosen, rejected; or the one KTO completion). */
        long[][] tokenize(Row r, PreferenceFormat.Sample s) {
            List<List<Message>> comps = s.rejected() == null ? List.of(s.chosen()) : List.of(s.chosen(), s.rejected());
            String[] fields = s.label() != null ? new String[]{"completion"} : new String[]{"chosen", "rejected"};
            long[][] out = new long[comps.size() + 1][];
            if (c.promptStyle() == Encoder.PromptStyle.TEMPLATE) {
                String prompt = render(r, s.prompt(), true);
                out[0] = tok.encode(prompt, false);
                for (int i = 0; i < comps.size(); i++) {
                    String full = render(r, concat(s.prompt(), comps.get(i)), false);
                    if (!full.startsWith(prompt))
                        throw r.error("field '" + fields[i] + "': the chat template's rendering of prompt + " + fields[i] + " does not start with its rendering of the prompt (with the generation prompt), so the completion cannot be split off");
                    out[i + 1] = after(r, fields[i], out[0], tok.encode(full, false));
                }
                return out;
            }
            String prompt = s.textPrompt() != null ? s.textPrompt() : alpaca(r, s.prompt());
            out[0] = tok.encode(prompt, true);
            String[] texts = s.label() != null ? new String[]{s.textChosen()} : new String[]{s.textChosen(), s.textRejected()};
            for (int i = 0; i < comps.size(); i++) {
                String text = texts[i] != null ? texts[i] : single(r, fields[i], comps.get(i));
                // an Alpaca answer is tokenized on its own, exactly as the SFT Encoder does (and as generation continues
                // after the prompt), so an SFT adapter goes on into DPO on the same tokens; TRL tokenizes prompt + text
                // jointly, which differs only where the tokenizer treats a word start differently (SentencePiece's "▁")
                long[] ids = !s.raw() ? tok.encode(text, false) : after(r, fields[i], out[0], tok.encode(prompt + text, true)); // HH transcripts stay one text
                // TRL appends the EOS token to plain-text completions that do not end with it
                out[i + 1] = ids[ids.length - 1] == eos ? ids : append(ids, eos);
            }
            return out;
        }

        /** The tokens of prompt + completion after the prompt's (TRL slices at the prompt's length and warns when they are not a prefix). */
        long[] after(Row r, String field, long[] prompt, long[] full) {
            if (full.length <= prompt.length) throw r.error("field '" + field + "': no completion tokens after the prompt");
            if (!Arrays.equals(prompt, 0, prompt.length, full, 0, prompt.length))
                warnings.add(r.file() + " " + r.where() + ": field '" + field + "': the prompt's tokens are not a prefix of prompt + " + field + "'s tokens (a token spans the boundary); split at the prompt's length as TRL does");
            return Arrays.copyOfRange(full, prompt.length, full.length);
        }

        String render(Row r, List<Message> msgs, boolean generationPrompt) {
            return Encoder.render(tok, r, msgs.stream().map(Message::asMap).toList(), generationPrompt);
        }

        /** The Alpaca layout of a conversation prompt, as Encoder lays out a conversation: system text, then one block per user turn, earlier answers ending with EOS. */
        String alpaca(Row r, List<Message> msgs) {
            Object eosText = tok.specialTokens().get("eos_token");
            var sb = new StringBuilder(msgs.stream().filter(m -> m.role().equals("system")).map(m -> m.content() + "\n\n").findFirst().orElse(""));
            boolean first = true;
            for (Message m : msgs) {
                if (m.role().equals("user")) {
                    sb.append(first ? "" : "\n\n").append(Encoder.ALPACA_INSTRUCTION).append(m.content()).append(Encoder.ALPACA_RESPONSE);
                    first = false;
                } else if (m.role().equals("assistant")) sb.append(m.content()).append(eosText == null ? "" : eosText);
            }
            if (first) throw r.error("the prompt has no user turn to lay out as an Alpaca instruction");
            return sb.toString();
        }

        static String single(Row r, String field, List<Message> msgs) {
            if (msgs.size() != 1) throw r.error("field '" + field + "': " + msgs.size() + " turns; the alpaca prompt style takes one answer (use the chat template)");
            return msgs.getFirst().content();
        }

        static List<Message> concat(List<Message> a, List<Message> b) {
            var l = new ArrayList<>(a);
            l.addAll(b);
            return l;
        }

        static long[] append(long[] a, long x) {
            long[] b = Arrays.copyOf(a, a.length + 1);
            b[a.length] = x;
            return b;
        }
    }
}
