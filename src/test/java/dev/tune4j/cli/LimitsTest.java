package dev.tune4j.cli;

import dev.tune4j.CliRun;
import dev.tune4j.EmbeddedModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

import static org.assertj.core.api.Assertions.assertThat;

/** Issue 11 item 6: out-of-range numbers are named errors (exit 2, the flag named, no stack trace) before any work starts. */
class LimitsTest {
    @TempDir
    static Path tmp;

    /** A case: what the message must contain, then the command line; MODEL is the embedded stories260K, TMP a temporary folder. */
    static List<String[]> cases() {
        var c = new ArrayList<String[]>();
        String[] gen = {"generate", "--model", "MODEL", "--prompt-ids", "[1, 2]"};
        add(c, "--max-new-tokens", gen, "--max-new-tokens", "0");
        add(c, "--max-new-tokens", gen, "--max-new-tokens", "-5");
        add(c, "--max-new-tokens", gen, "--max-new-tokens", "511"); // stories260K: 512 positions, 2 taken by the prompt
        add(c, "--temperature", gen, "--temperature", "-1");
        add(c, "--temperature", gen, "--temperature", "NaN");
        add(c, "--top-p", gen, "--top-p", "0");
        add(c, "--top-p", gen, "--top-p", "1.5");
        add(c, "--top-k", gen, "--top-k", "-1");
        add(c, "--repetition-penalty", gen, "--repetition-penalty", "0");
        add(c, "--prompt-ids", new String[]{"generate", "--model", "MODEL"}, "--prompt-ids", "[1, 512]");
        add(c, "--prompt-ids", new String[]{"generate", "--model", "MODEL"}, "--prompt-ids", "[-1]");
        add(c, "--prompt-ids", new String[]{"generate", "--model", "MODEL"}, "--prompt-ids", "[]");
        add(c, "--top-p", new String[]{"chat", "--model", "MODEL"}, "--top-p", "-0.5");
        add(c, "--max-new-tokens", new String[]{"chat", "--model", "MODEL"}, "--max-new-tokens", "0");
        add(c, "--input", new String[]{"logits", "--model", "MODEL", "--out", "TMP/logits.safetensors"}, "--input", "[[1, 2], [3, 600]]");
        for (String what : List.of("forward", "generate"))
            for (String flag : List.of("--batch-size", "--seq-len", "--steps"))
                add(c, flag, new String[]{"bench", what, "--shape", "tiny"}, flag, "0");
        add(c, "--seq-len", new String[]{"bench", "forward", "--shape", "tiny"}, "--seq-len", "-3");
        String[] eval = {"eval", "--model", "MODEL", "--data", "TMP/none.jsonl"};
        add(c, "--max-seq-len", eval, "--max-seq-len", "0");
        add(c, "--max-new-tokens", eval, "--generate", "--max-new-tokens", "-1");
        add(c, "--limit", eval, "--generate", "--limit", "-1");
        add(c, "--batch-size", eval, "--preference", "--batch-size", "0");
        add(c, "--max-shard-size", new String[]{"merge", "--model", "MODEL", "--adapter", "TMP/a", "--out", "TMP/merged"}, "--max-shard-size", "0");
        add(c, "--max-shard-size", new String[]{"merge", "--model", "MODEL", "--adapter", "TMP/a", "--out", "TMP/merged"}, "--max-shard-size", "0.1b");
        add(c, "--blocksize", new String[]{"quantize", "--model", "MODEL", "--out", "TMP/q"}, "--blocksize", "0");
        add(c, "--blocksize", new String[]{"quantize", "--model", "MODEL", "--out", "TMP/q"}, "--blocksize", "48");
        String[] plan = {"plan", "--model", "llama-3.1-8b"};
        for (String[] fv : new String[][]{{"--examples", "-100"}, {"--examples", "0"}, {"--tokens-per-example", "0"}, {"--epochs", "0"}, {"--epochs", "NaN"},
                {"--batch-size", "0"}, {"--seq-len", "0"}, {"--lr", "NaN"}, {"--lr", "-1e-4"}, {"--val-ratio", "1.5"}, {"--mix-ratio", "-1"}, {"--mfu", "0"},
                {"--mfu", "1.5"}, {"--r", "0"}, {"--lora-alpha", "-16"}, {"--labelled-share", "0"}, {"--labelled-share", "1.2"}, {"--checkpoints", "-1"},
                {"--variants", "0"}, {"--loss-chunk", "-1"}})
            add(c, fv[0], plan, fv);
        add(c, "--price h100", plan, "--price", "h100=-1");
        for (String[] fv : new String[][]{{"--examples", "-100"}, {"--domain-tokens", "-1"}, {"--vram-gb", "NaN"}, {"--vram-gb", "0"}, {"--gpus", "0"},
                {"--variants", "0"}, {"--budget", "-5"}, {"--tokens-per-example", "0"}, {"--price", "-1"}})
            add(c, fv[0], new String[]{"advise", "--few-shot-works", "no"}, fv);
        return c;
    }

    private static void add(List<String[]> cases, String named, String[] command, String... more) {
        var all = new ArrayList<String>();
        all.add(named);
        all.addAll(Arrays.asList(command));
        all.addAll(Arrays.asList(more));
        cases.add(all.toArray(String[]::new));
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("table")
    void outOfRangeIsANamedBadInput(String named, String commandLine, String[] args) throws Exception {
        Path model = EmbeddedModel.stories260k();
        String[] a = Arrays.stream(args).map(s -> s.equals("MODEL") ? model.toString() : s.replace("TMP", tmp.toString())).toArray(String[]::new);
        CliRun r = CliRun.of(a);
        assertThat(r.code()).as(r.err()).isEqualTo(Main.BAD_INPUT);
        assertThat(r.err()).contains("error: ").contains(named).doesNotContain("Exception").doesNotContain("\tat ");
    }

    static List<Object[]> table() {
        return cases().stream().map(c -> new Object[]{c[0], String.join(" ", Arrays.copyOfRange(c, 1, c.length)),
                Arrays.copyOfRange(c, 1, c.length)}).toList();
    }

    @Test
    void messagesGiveTheRangeAndTheValueFound() {
        assertThat(CliRun.of("plan", "--model", "llama-3.1-8b", "--examples", "-100").err()).contains("--examples: expected an integer >= 1, found -100");
        assertThat(CliRun.of("plan", "--model", "llama-3.1-8b", "--val-ratio", "1.5").err()).contains("--val-ratio: expected a number in [0, 1), found 1.5");
        assertThat(CliRun.of("plan", "--model", "llama-3.1-8b", "--mfu", "0").err()).contains("--mfu: expected a number in (0, 1], found 0.0");
    }

    @Test
    void maxNewTokensBeyondTheContextNamesTheRoomLeft() throws Exception {
        CliRun r = CliRun.of("generate", "--model", EmbeddedModel.stories260k().toString(), "--prompt-ids", "[1, 2]", "--max-new-tokens", "600");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--max-new-tokens: expected an integer in [1, 510] (max_position_embeddings 512 minus the prompt's 2 tokens), found 600");
    }

    @Test
    void theDefaultMaxNewTokensIsCutToTheContextWithANote() throws Exception {
        String ids = LongStream.range(0, 500).map(i -> 1 + i % 400).mapToObj(Long::toString).collect(Collectors.joining(",", "[", "]"));
        CliRun r = CliRun.of("generate", "--model", EmbeddedModel.stories260k().toString(), "--prompt-ids", ids, "--ignore-eos");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.err()).contains("note: generating at most 12 tokens").contains("500 prompt + 12 new tokens");
    }

    @Test
    void adviseInteractiveAsksAgainAndNamesTheEndOfInput() {
        var in = System.in;
        try {
            System.setIn(new ByteArrayInputStream("maybe\nyes\n".getBytes(StandardCharsets.UTF_8)));
            CliRun again = CliRun.of("advise", "--interactive");
            assertThat(again.code()).as(again.err()).isZero();
            assertThat(again.err()).contains("please answer yes, no or skip");
            assertThat(again.out()).contains("in-context learning");

            System.setIn(new ByteArrayInputStream("no\nno\nno\nlots\n".getBytes(StandardCharsets.UTF_8)));
            CliRun ended = CliRun.of("advise", "--interactive");
            assertThat(ended.code()).isEqualTo(2);
            assertThat(ended.err()).contains("please answer a whole number >= 0, or skip").contains("error: advise --interactive: input ended before an answer to")
                    .doesNotContain("Exception");

            System.setIn(new ByteArrayInputStream("no\nno\nno\n2000\nyes\nyes\nyes\nno\nskip\nno\nno\nsomething\noutput-format\n24\n".getBytes(StandardCharsets.UTF_8)));
            CliRun goal = CliRun.of("advise", "--interactive", "--json");
            assertThat(goal.code()).as(goal.err()).isZero();
            assertThat(goal.err()).contains("please answer one of domain-knowledge, response-quality");
            assertThat(goal.out()).contains("\"vram_tier\"");
        } finally {
            System.setIn(in);
        }
    }
}
