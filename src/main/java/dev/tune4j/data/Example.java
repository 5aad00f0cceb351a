package dev.tune4j.data;

/** One tokenized training example: ids and labels of equal length, −100 where no loss is taken (prompt tokens). */
public record Example(long[] ids, long[] labels) {
    public static final long IGNORE = -100;

    public Example {
        if (ids.length != labels.length) throw new IllegalArgumentException("ids and labels differ in length");
    }

    public int length() {
        return ids.length;
    }

    /** Tokens that will be predicted: labels ≠ −100 after the first position (the shift drops label 0). */
    public int supervisedTokens() {
        int n = 0;
        for (int i = 1; i < labels.length; i++) if (labels[i] != IGNORE) n++;
        return n;
    }
}
