package dev.tune4j.data;

import dev.tune4j.text.Tokenizer;

import java.nio.file.Path;
import java.util.*;

/** Tokenized training and validation examples, with the counts a user should see (skipped, truncated, dropped, mixed). */
public final class Dataset {
    public final List<Example> train, val;
    public final Format format;
    public final List<String> warnings;
    public final int rows, truncated, dropped, mixed;

    private Dataset(List<Example> train, List<Example> val, Format format, List<String> warnings, int rows, int truncated, int dropped, int mixed) {
        this.train = train;
        this.val = val;
        this.format = format;
        this.warnings = warnings;
        this.rows = rows;
        this.truncated = truncated;
        this.dropped = dropped;
        this.mixed = mixed;
    }

    public static Dataset load(DataConfig c, Tokenizer tok, long eosId) {
        var enc = new Encoder(tok, c.promptStyle(), eosId);
        var warnings = new ArrayList<String>();
        int[] counts = new int[2]; // truncated, dropped
        var read = DataFiles.read(c.data(), c.skipBadRows());
        warnings.addAll(read.skipped());
        Format format = c.format() != null ? c.format() : Format.detect(read.rows().getFirst());
        List<Example> all = encodeAll(read.rows(), format, enc, c, warnings, counts);
        if (all.isEmpty()) throw new DataException(c.data(), "", "no usable examples (" + warnings.size() + " skipped, " + counts[1] + " with nothing to learn)");

        List<Example> train, val;
        if (c.valFile() != null) {
            var v = DataFiles.read(c.valFile(), c.skipBadRows());
            warnings.addAll(v.skipped());
            train = all;
            val = encodeAll(v.rows(), c.format() != null ? c.format() : Format.detect(v.rows().getFirst()), enc, c, warnings, counts);
        } else {
            var order = new ArrayList<Integer>();
            for (int i = 0; i < all.size(); i++) order.add(i);
            Collections.shuffle(order, new Random(c.seed()));
            int nVal = c.valRatio() == 0 || all.size() < 2 ? 0 : Math.max(1, (int) Math.round(all.size() * c.valRatio()));
            val = new ArrayList<>();
            train = new ArrayList<>();
            for (int i = 0; i < order.size(); i++) (i < nVal ? val : train).add(all.get(order.get(i)));
        }
        int mixed = 0;
        if (c.mixFile() != null && c.mixRatio() > 0) {
            var m = DataFiles.read(c.mixFile(), c.skipBadRows());
            var mixAll = encodeAll(m.rows(), Format.detect(m.rows().getFirst()), enc, c, warnings, counts);
            mixed = (int) Math.round(c.mixRatio() / (1 - c.mixRatio()) * train.size());
            var rnd = new Random(c.seed() + 1);
            train = new ArrayList<>(train);
            for (int i = 0; i < mixed && !mixAll.isEmpty(); i++) train.add(mixAll.get(rnd.nextInt(mixAll.size())));
        }
        return new Dataset(List.copyOf(train), List.copyOf(val), format, warnings, read.rows().size(), counts[0], counts[1], mixed);
    }

    private static List<Example> encodeAll(List<Row> rows, Format format, Encoder enc, DataConfig c, List<String> warnings, int[] counts) {
        var out = new ArrayList<Example>();
        for (Row r : rows) {
            Example e;
            try {
                e = enc.encode(r, format);
            } catch (DataException ex) {
                if (!c.skipBadRows()) throw ex;
                warnings.add(ex.getMessage());
                continue;
            }
            if (e.length() > c.maxSeqLen()) {
                e = new Example(Arrays.copyOf(e.ids(), c.maxSeqLen()), Arrays.copyOf(e.labels(), c.maxSeqLen()));
                counts[0]++;
            }
            if (e.supervisedTokens() == 0) {
                counts[1]++;
                continue;
            }
            out.add(e);
        }
        return out;
    }

    public String summary() {
        return String.format("%d records (%s) → %d train + %d validation examples; %d truncated, %d dropped with nothing to learn, %d skipped%s",
                rows, format.name().toLowerCase(), train.size(), val.size(), truncated, dropped, warnings.size(), mixed > 0 ? ", " + mixed + " mixed-in" : "");
    }
}
