package dev.tune4j.hf;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.*;
import java.util.Comparator;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Write-to-temporary, fsync, rename: what is under the final name is either the old file or the whole new one.
 * Temporaries live beside their target as {@code .NAME.tune4j-tmp-PID-N} (and replaced folders, until deleted, as
 * {@code .NAME.tune4j-old-PID-N}); the next write into the same folder removes those whose process is gone.
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    private static final AtomicLong COUNTER = new AtomicLong();
    private static final long PID = ProcessHandle.current().pid();
    /** A staging name: the target's name, the kind, the owner's PID. Found anywhere in a dot-name (stages of stages). */
    static final Pattern STAGING = Pattern.compile("\\.tune4j-(tmp|old)-(\\d+)-\\d+");

    public interface Body {
        void writeTo(OutputStream out) throws IOException;
    }

    public static void write(Path file, Body body) throws IOException {
        Path abs = file.toAbsolutePath();
        Files.createDirectories(abs.getParent());
        removeStale(abs.getParent());
        Path tmp = create(abs, "tmp", false);
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                 OutputStream out = new java.io.BufferedOutputStream(Channels.newOutputStream(ch), 1 << 20)) {
                body.writeTo(out);
                out.flush();
                ch.force(true);
            }
            Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    public static void writeString(Path file, String text) throws IOException {
        write(file, out -> out.write(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    /**
     * Publishes a folder built at {@code tmpDir} under {@code dir}: an existing {@code dir} is moved aside first and
     * removed only after the rename succeeded. Callers that write user outputs check them first ({@link OutputPaths}).
     */
    public static void publishDir(Path tmpDir, Path dir) throws IOException {
        Path old = null;
        if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            old = stagingName(dir.toAbsolutePath(), "old");
            Files.move(dir, old, StandardCopyOption.ATOMIC_MOVE);
        }
        Files.move(tmpDir, dir, StandardCopyOption.ATOMIC_MOVE);
        if (old != null) deleteTree(old);
    }

    /** An empty folder beside {@code dir} ({@code .NAME.tune4j-tmp-PID-N}) to build it in. */
    public static Path tempDirBeside(Path dir) throws IOException {
        Path abs = dir.toAbsolutePath();
        Files.createDirectories(abs.getParent());
        removeStale(abs.getParent());
        return create(abs, "tmp", true);
    }

    /** A not-yet-existing staging path beside {@code target} with this process's PID in its name. */
    public static Path stagingName(Path target, String kind) {
        Path abs = target.toAbsolutePath();
        Path p;
        do p = abs.resolveSibling("." + abs.getFileName() + ".tune4j-" + kind + "-" + PID + "-" + COUNTER.getAndIncrement());
        while (Files.exists(p, LinkOption.NOFOLLOW_LINKS));
        return p;
    }

    private static Path create(Path target, String kind, boolean dir) throws IOException {
        while (true) {
            Path p = stagingName(target, kind);
            try {
                return dir ? Files.createDirectory(p) : Files.createFile(p);
            } catch (FileAlreadyExistsException e) {
                // a name taken between the check and the create: take the next one
            }
        }
    }

    /**
     * Removes the staging files and folders in {@code parent} that a process no longer alive left behind (killed mid-write).
     * A folder moved aside for replacement whose target name is now empty is moved back instead: the process died between
     * the two renames, and the old content is the only complete one.
     */
    public static void removeStale(Path parent) throws IOException {
        if (!Files.isDirectory(parent)) return;
        try (Stream<Path> s = Files.list(parent)) {
            for (Path p : s.toList()) {
                String name = p.getFileName().toString();
                Matcher m = STAGING.matcher(name);
                if (!name.startsWith(".") || !m.find()) continue;
                long pid;
                try {
                    pid = Long.parseLong(m.group(2));
                } catch (NumberFormatException e) {
                    continue;
                }
                if (ProcessHandle.of(pid).isPresent()) continue; // alive (or a reused PID): not ours to judge
                Path target = p.resolveSibling(name.substring(1, m.start()));
                try {
                    if (m.group(1).equals("old") && m.start() == name.length() - m.group().length() && !Files.exists(target, LinkOption.NOFOLLOW_LINKS))
                        Files.move(p, target, StandardCopyOption.ATOMIC_MOVE);
                    else deleteTree(p);
                } catch (IOException e) {
                    // another process cleaning the same folder, or no permission: leave it for the next run
                }
            }
        }
    }

    public static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
