package dev.tune4j.serve;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Adapter names and paths stay inside the adapter root: lexically, and again after symbolic links are resolved. */
class AdaptersTest {
    @TempDir
    Path tmp;

    Path adapter(Path dir, int r) throws Exception {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": " + r + ", \"target_modules\": [\"q_proj\"], \"rank_pattern\": {}}");
        return dir;
    }

    @Test
    void pathsAreConfinedToTheRoot() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("root"));
        adapter(root.resolve("good"), 8);
        adapter(root.resolve("nested/deeper"), 8);
        Path outside = adapter(tmp.resolve("outside"), 8);
        Files.createSymbolicLink(root.resolve("link-out"), outside);
        Files.createSymbolicLink(root.resolve("link-in"), root.resolve("good"));
        var a = new Adapters(root, 16, Map.of());
        Path real = root.toRealPath();

        assertThat(a.confined("good", "lora_path")).isEqualTo(real.resolve("good"));
        assertThat(a.confined(real.resolve("good").toString(), "lora_path")).isEqualTo(real.resolve("good"));
        assertThat(a.confined("nested/../good", "lora_path")).isEqualTo(real.resolve("good"));
        assertThat(a.confined("link-in", "lora_path")).isEqualTo(real.resolve("good"));
        for (String bad : new String[]{"../outside", "/etc", outside.toString(), "link-out", "nested/../../outside", "..", ".", "", "a\u0000b", "x\ny"}) {
            assertThatThrownBy(() -> a.confined(bad, "lora_path")).as(bad).isInstanceOfSatisfying(ApiError.class, e -> {
                assertThat(e.status).isEqualTo(400);
                assertThat(e.param).isEqualTo("lora_path");
            });
        }
        assertThatThrownBy(() -> a.confined("missing", "lora_path")).isInstanceOfSatisfying(ApiError.class, e -> assertThat(e.status).isEqualTo(404));

        assertThat(a.find("good")).get().extracting(Adapters.Entry::rank).isEqualTo(8);
        assertThat(a.find("nested")).isEmpty(); // a folder without adapter_config.json
        assertThat(a.find("../outside")).isEmpty(); // not a plain name
        assertThat(a.find("missing")).isEmpty();
        assertThatThrownBy(() -> a.find("link-out")).isInstanceOfSatisfying(ApiError.class, e -> assertThat(e.status).isEqualTo(400));
        assertThat(a.list()).extracting(Adapters.Entry::name).containsExactly("good");
    }

    @Test
    void namesAndRanksAreChecked() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("root"));
        adapter(root.resolve("big"), 32);
        var a = new Adapters(root, 16, Map.of());
        assertThatThrownBy(() -> a.find("big")).isInstanceOf(ApiError.class).hasMessageContaining("rank 32").hasMessageContaining("--max-lora-rank 16");
        for (String n : new String[]{"a", "A.b_c-9", "x".repeat(128)}) assertThat(Adapters.NAME.matcher(n).matches()).as(n).isTrue();
        for (String n : new String[]{"", ".hidden", "-x", "a/b", "a\\b", "..", "x".repeat(129), "a b", "é"}) assertThat(Adapters.NAME.matcher(n).matches()).as(n).isFalse();
        assertThatThrownBy(() -> new Adapters(root, 16, Map.of("../x", root.resolve("big")))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("--lora-modules");
        assertThatThrownBy(() -> new Adapters(root, 16, Map.of("big", root.resolve("big")))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("rank 32");
        assertThatThrownBy(() -> new Adapters(root, 16, Map.of("gone", root.resolve("gone")))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no such folder");
        var none = new Adapters(null, 16, Map.of());
        assertThatThrownBy(() -> none.confined("x", "lora_path")).isInstanceOf(ApiError.class).hasMessageContaining("--adapter-root");
        assertThat(none.find("x")).isEmpty();
    }
}
