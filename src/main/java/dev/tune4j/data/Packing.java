package dev.tune4j.data;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Rows of training input: padded (one example per row) or packed (several examples per row, each with its own
 * positions from 0 and its own segment number, so attention never crosses examples and no compute goes to padding).
 */
public final class Packing {
    private Packing() {}

    /** One row: ids, labels, positions and segments (1, 2, … per example; 0 = padding) of length {@code len}. */
    public record RowData(long[] ids, long[] labels, long[] positions, long[] segments) {
        public int length() {
            return ids.length;
        }
    }

    /** Greedy in order: an example goes into the current row if it fits, else starts a new one; rows are padded to maxLen. */
    public static List<RowData> pack(List<Example> examples, int maxLen, long padId) {
        var rows = new ArrayList<RowData>();
        var current = new ArrayList<Example>();
        int used = 0;
        for (Example e : examples) {
            if (used + e.length() > maxLen && !current.isEmpty()) {
                rows.add(build(current, maxLen, padId));
                current.clear();
                used = 0;
            }
            current.add(e);
            used += e.length();
        }
        if (!current.isEmpty()) rows.add(build(current, maxLen, padId));
        return rows;
    }

    private static RowData build(List<Example> parts, int maxLen, long padId) {
        long[] ids = new long[maxLen], labels = new long[maxLen], pos = new long[maxLen], seg = new long[maxLen];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Example.IGNORE);
        int at = 0, s = 1;
        for (Example e : parts) {
            for (int i = 0; i < e.length(); i++, at++) {
                ids[at] = e.ids()[i];
                // the first token of an example is never a target: the shifted loss must not predict it from the previous example
                labels[at] = i == 0 ? Example.IGNORE : e.labels()[i];
                pos[at] = i;
                seg[at] = s;
            }
            s++;
        }
        return new RowData(ids, labels, pos, seg);
    }

    /** One example per row, right-padded to {@code len} (segments 1 on tokens, 0 on padding). */
    public static RowData padded(Example e, int len, long padId) {
        long[] ids = new long[len], labels = new long[len], pos = new long[len], seg = new long[len];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Example.IGNORE);
        for (int i = 0; i < e.length(); i++) {
            ids[i] = e.ids()[i];
            labels[i] = e.labels()[i];
            pos[i] = i;
            seg[i] = 1;
        }
        return new RowData(ids, labels, pos, seg);
    }
}
