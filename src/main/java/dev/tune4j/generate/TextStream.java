package dev.tune4j.generate;

import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * Incremental detokenization with stop strings. Each new token decodes only a short window (TGI's and vLLM's prefix and
 * read offsets: the text of ids[prefix..end) minus that of ids[prefix..read)), so a long answer is not re-decoded per token;
 * a window ending in U+FFFD (half a UTF-8 character) waits for the next token. Text that could still become a stop
 * string is held back, and a stop string spanning tokens is found in the accumulated text.
 */
final class TextStream {
    private final Function<long[], String> detokenizer;
    private final List<String> stops;
    private final int longestStop;
    private long[] ids = new long[32];
    private int n, prefixOffset, readOffset, emitted;
    private final StringBuilder text = new StringBuilder();
    private boolean stopped;

    TextStream(Function<long[], String> detokenizer, List<String> stops) {
        this.detokenizer = detokenizer;
        this.stops = stops;
        this.longestStop = stops.stream().mapToInt(String::length).max().orElse(0);
    }

    /** Adds one generated token; returns the text that is now safe to hand out (possibly ""). */
    String add(long id) {
        if (n == ids.length) ids = Arrays.copyOf(ids, 2 * n);
        ids[n++] = id;
        if (detokenizer == null || stopped) return "";
        String before = decode(prefixOffset, readOffset), now = decode(prefixOffset, n);
        if (now.length() > before.length() && !now.endsWith("\uFFFD") && now.startsWith(before)) {
            text.append(now, before.length(), now.length());
            prefixOffset = readOffset;
            readOffset = n;
        }
        return release(false);
    }

    /** At the end: whatever was held back (a trailing partial character decodes as it is). */
    String finish() {
        if (detokenizer == null || stopped) return "";
        if (readOffset < n) {
            String before = decode(prefixOffset, readOffset), now = decode(prefixOffset, n);
            if (now.length() > before.length() && now.startsWith(before)) text.append(now, before.length(), now.length());
            readOffset = n;
        }
        return release(true);
    }

    boolean stopped() {
        return stopped;
    }

    /** The text so far (cut before a stop string once one was found). */
    String text() {
        return text.toString();
    }

    private String release(boolean all) {
        int from = Math.max(0, emitted - longestStop + 1);
        int cut = -1;
        for (String s : stops) {
            int at = text.indexOf(s, from);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        int safe;
        if (cut >= 0) {
            text.setLength(cut);
            stopped = true;
            safe = cut;
        } else safe = all ? text.length() : text.length() - heldBack();
        safe = Math.max(safe, emitted);
        String out = text.substring(emitted, safe);
        emitted = safe;
        return out;
    }

    /** The longest suffix of the text that is a proper prefix of a stop string (it may still become one). */
    private int heldBack() {
        int best = 0;
        String tail = text.substring(Math.max(0, text.length() - longestStop));
        for (String s : stops)
            for (int k = Math.min(s.length() - 1, tail.length()); k > best; k--)
                if (tail.regionMatches(tail.length() - k, s, 0, k)) {
                    best = k;
                    break;
                }
        return best;
    }

    private String decode(int from, int to) {
        return from >= to ? "" : detokenizer.apply(Arrays.copyOfRange(ids, from, to));
    }
}
