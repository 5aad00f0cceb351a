package dev.tune4j.hf;

import java.io.IOException;
import java.nio.file.*;
import java.util.Collection;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * The one check every writing command makes before any expensive work: nothing existing is replaced without
 * {@code --overwrite}, no output overlaps an input, a file is not where a folder is expected (or the reverse), and the
 * destination can be written. Paths are compared as real paths (symbolic links resolved; an output that does not exist
 * yet through its nearest existing parent). Refusals are {@link Refused} (bad input: exit code 2).
 */
public final class OutputPaths {
    private OutputPaths() {}

    public enum Kind {
        FILE("a file"), FOLDER("a folder");
        final String noun;

        Kind(String noun) {
            this.noun = noun;
        }
    }

    /** A refused output: the message names the path and what to do. */
    public static final class Refused extends UserError {
        public Refused(String message) {
            super(message);
        }
    }

    /** @param hasContent an existing output that is not empty (only possible with overwrite allowed) */
    public record Checked(Path path, Path real, boolean hasContent) {}

    /**
     * Checks {@code out} and removes staging copies that dead processes left beside it.
     *
     * @param replaceAllowed an existing non-empty output may be replaced (or continued)
     * @param howToReplace   what the refusal tells the user, e.g. "pass --overwrite to replace it"
     * @param inputs         files and folders the command reads (null entries are ignored)
     */
    public static Checked check(Path out, Kind kind, boolean replaceAllowed, String howToReplace, Collection<Path> inputs) {
        Path abs = out.toAbsolutePath();
        if (abs.getParent() == null) throw new Refused(out + ": cannot write " + kind.noun + " at the root of the file system");
        if (Files.isSymbolicLink(abs) && !Files.exists(abs))
            throw new Refused(out + ": a symbolic link to a missing target; remove it or give another output");
        Path real = real(abs);
        for (Path in : inputs) {
            if (in == null) continue;
            Path r = real(in.toAbsolutePath());
            if (real.equals(r)) throw new Refused(out + ": the output is the input " + in + "; give a different output path");
            if (real.startsWith(r)) throw new Refused(out + ": the output is inside the input " + in + "; give a path outside it");
            if (r.startsWith(real)) throw new Refused(out + ": the output contains the input " + in + "; writing it would replace the input");
        }
        boolean exists = Files.exists(abs);
        if (exists && kind == Kind.FOLDER && !Files.isDirectory(abs))
            throw new Refused(out + ": is a file, expected a folder");
        if (exists && kind == Kind.FILE && Files.isDirectory(abs))
            throw new Refused(out + ": is a folder, expected a file (give the file name, e.g. " + abs.resolve("model.gguf") + ")");
        if (exists && !Files.isRegularFile(abs) && !Files.isDirectory(abs))
            throw new Refused(out + ": is not a regular file or folder (a device or pipe)");
        Path existing = nearestExisting(abs.getParent());
        if (!Files.isDirectory(existing))
            throw new Refused(out + ": cannot create it, " + existing + " is a file, not a folder");
        boolean content = exists && hasContent(abs);
        if (content && !replaceAllowed)
            throw new Refused(out + ": exists and is not empty; nothing was written (" + howToReplace + ")");
        probeWritable(out, existing);
        if (exists && Files.isDirectory(abs)) probeWritable(out, abs);
        try {
            AtomicFiles.removeStale(existing);
        } catch (IOException e) {
            // cleaning up is best effort; the write itself will report a real problem
        }
        return new Checked(out, real, content);
    }

    /**
     * Empties an existing output folder for a fresh start: its content is moved aside in one rename, an empty folder takes
     * its place, then the old content is deleted (a process killed in between leaves a staging folder the next run removes).
     */
    public static void clearFolder(Path dir) throws IOException {
        Path abs = dir.toAbsolutePath();
        if (!Files.isDirectory(abs)) return;
        Path old = AtomicFiles.stagingName(abs, "old");
        Files.move(abs, old, StandardCopyOption.ATOMIC_MOVE);
        Files.createDirectory(abs);
        AtomicFiles.deleteTree(old);
    }

    /** The real path of {@code p}: symbolic links resolved, through the nearest existing parent when {@code p} does not exist. */
    public static Path real(Path p) {
        Path abs = p.toAbsolutePath();
        Path existing = nearestExisting(abs);
        try {
            return existing.toRealPath().resolve(existing.relativize(abs)).normalize();
        } catch (IOException e) {
            return abs.normalize();
        }
    }

    private static Path nearestExisting(Path abs) {
        Path e = abs;
        while (e != null && !Files.exists(e)) e = e.getParent();
        return Objects.requireNonNullElse(e, abs.getRoot());
    }

    private static boolean hasContent(Path p) {
        try {
            if (!Files.isDirectory(p)) return Files.size(p) > 0;
            try (Stream<Path> s = Files.list(p)) {
                return s.findAny().isPresent();
            }
        } catch (IOException e) {
            return true; // unreadable: treat as content, never replace blindly
        }
    }

    /** Creating and deleting a probe file is the test that holds for root, read-only mounts and ACLs alike. */
    private static void probeWritable(Path out, Path dir) {
        try {
            Path probe = Files.createFile(AtomicFiles.stagingName(dir.resolve("probe"), "tmp"));
            Files.delete(probe);
        } catch (IOException e) {
            String why = e instanceof AccessDeniedException ? "permission denied" : e.getClass().getSimpleName().replace("Exception", "") + " " + e.getMessage();
            if (e instanceof FileSystemException f && f.getReason() != null) why = f.getReason();
            throw new Refused(out + ": cannot write in " + dir + " (" + why + "); nothing was written");
        }
    }
}
