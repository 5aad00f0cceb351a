package dev.tune4j.cli;

import dev.tune4j.generate.Generator;
import dev.tune4j.text.Tokenizer;

import java.util.Arrays;

/**
 * Prints text as tokens arrive: decodes prompt + everything generated so far and prints only what is new, holding back
 * output while the tail is an incomplete UTF-8 sequence (shown as U+FFFD). Decoding with the prompt keeps the first
 * space of the continuation, which SentencePiece decoders strip at the start of a text. Without a tokenizer it prints ids.
 */
final class StreamingPrinter {
    private final Tokenizer tokenizer;
    private long[] ids;
    private final int promptLength;
    private int n;
    private String printed;
    private final String promptText;
    private final int holdBack; // characters kept back so a stop string is never printed in part

    StreamingPrinter(Tokenizer tokenizer, long[] prompt, java.util.List<String> stopStrings) {
        this.tokenizer = tokenizer;
        this.ids = Arrays.copyOf(prompt, prompt.length + 16);
        this.promptLength = prompt.length;
        this.n = prompt.length;
        this.promptText = tokenizer == null ? "" : tokenizer.decode(prompt, true);
        this.printed = promptText;
        this.holdBack = stopStrings.stream().mapToInt(String::length).max().orElse(0);
    }

    void onToken(int id) {
        if (n == ids.length) ids = Arrays.copyOf(ids, n * 2);
        ids[n++] = id;
        if (tokenizer == null) {
            System.out.print(id + " ");
            System.out.flush();
            return;
        }
        String text = tokenizer.decode(Arrays.copyOf(ids, n), true);
        if (text.endsWith("\uFFFD") || !text.startsWith(printed)) return;
        text = text.substring(0, Math.max(printed.length(), text.length() - holdBack));
        System.out.print(text.substring(printed.length()));
        System.out.flush();
        printed = text;
    }

    /** Prints what is still held back (and nothing past a stop string), then a newline. */
    void finish(Generator.Result r) {
        if (tokenizer != null) {
            String all = tokenizer.decode(Arrays.copyOf(ids, n), true);
            if (r.reason() == Generator.StopReason.STOP_STRING) all = promptText + continuation(all).substring(0, r.text().length());
            if (all.startsWith(printed)) System.out.print(all.substring(printed.length()));
        }
        System.out.println();
    }

    /** The decoded continuation (prompt text removed), as it should appear after the prompt. */
    String continuation(String all) {
        return all.startsWith(promptText) ? all.substring(promptText.length()) : all;
    }
}
