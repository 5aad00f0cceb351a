package dev.tune4j.cli;

import dev.tune4j.CliRun;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** `tune4j serve` refuses bad flags with exit 2 and a message naming the flag, before any model is loaded. */
class ServeCliTest {
    static void refused(String flag, String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "serve";
        System.arraycopy(args, 0, all, 1, args.length);
        CliRun r = CliRun.of(all);
        assertThat(r.code()).as(r.err()).isEqualTo(2);
        assertThat(r.err()).contains(flag);
        assertThat(r.err()).doesNotContain("\tat ");
    }

    @Test
    void badFlagsExitTwoNamingTheFlag() {
        refused("--no-such-flag", "--model", "m", "--no-such-flag");
        refused("--model", "--port", "8000");
        refused("--port", "--model", "m", "--port", "70000");
        refused("--port", "--model", "m", "--port", "eighty");
        refused("--max-lora-rank", "--model", "m", "--max-lora-rank", "7");
        refused("--max-cpu-loras", "--model", "m", "--max-loras", "4", "--max-cpu-loras", "2");
        refused("--max-num-seqs", "--model", "m", "--max-num-seqs", "0");
        refused("--lora-modules", "--model", "m", "--lora-modules", "just-a-name");
        refused("--lora-modules", "--model", "m", "--lora-modules", "a=x", "a=y");
        refused("--shutdown-grace", "--model", "m", "--shutdown-grace", "-1");
        refused("--api-key", "--model", "m", "--api-key", "");
    }
}
