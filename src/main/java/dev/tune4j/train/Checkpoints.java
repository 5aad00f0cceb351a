package dev.tune4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.tune4j.hf.*;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.stream.Stream;

/**
 * Training checkpoints under {@code out/checkpoints/step-N/}: the trainable tensors, the optimizer's moments and step,
 * and trainer_state.json (step, epoch, validation loss). Each is built in a temporary folder and renamed into place;
 * retention keeps the best {@code keepBest} by validation loss plus the last {@code keepLast}.
 */
public final class Checkpoints {
    private final Path root;
    private final int keepBest, keepLast;

    public Checkpoints(Path out, int keepBest, int keepLast) {
        this.root = out.resolve("checkpoints");
        this.keepBest = keepBest;
        this.keepLast = keepLast;
    }

    /** What trainer_state.json holds. */
    public record State(long step, long microBatches, double epoch, double valLoss, double bestValLoss, int evalsWithoutImprovement) {}

    /** @param extra writes method-specific files (e.g. the PEFT adapter) into the checkpoint folder before it is published */
    public Path save(State state, Map<String, Tensor> trainable, Optimizer opt, IoAction extra) throws IOException {
        return save(state, trainable, opt.state(), opt.steps(), extra);
    }

    /** @param optState every optimizer state tensor by name (gathered from the ranks under ZeRO) */
    public Path save(State state, Map<String, Tensor> trainable, Map<String, Tensor> optState, long optSteps, IoAction extra) throws IOException {
        Files.createDirectories(root);
        Path dir = root.resolve("step-" + state.step());
        Path tmp = AtomicFiles.tempDirBeside(dir);
        try {
            var t = new LinkedHashMap<String, TensorBlob>();
            for (var e : trainable.entrySet()) t.put(e.getKey(), blob(e.getValue()));
            var o = new LinkedHashMap<String, TensorBlob>();
            for (var e : optState.entrySet()) o.put(e.getKey(), blob(e.getValue()));
            o.put("step", TensorBlob.ofLongs(new long[]{optSteps}, 1));
            SafetensorsWriter.write(tmp.resolve("trainable.safetensors"), t, SafetensorsWriter.PT_METADATA);
            SafetensorsWriter.write(tmp.resolve("optimizer.safetensors"), o, SafetensorsWriter.PT_METADATA);
            byte[] json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(state);
            AtomicFiles.write(tmp.resolve("trainer_state.json"), out -> out.write(json));
            extra.run(tmp);
            AtomicFiles.publishDir(tmp, dir);
        } finally {
            AtomicFiles.deleteTree(tmp);
        }
        prune();
        return dir;
    }

    public interface IoAction {
        void run(Path dir) throws IOException;
    }

    /** uint8 state (8-bit optimizer codes) as U8, everything else as fp32. */
    private static TensorBlob blob(Tensor t) {
        if (t.scalar_type().intern() == org.bytedeco.pytorch.global.torch.ScalarType.Byte)
            return new TensorBlob(DType.U8, Tensors.shape(t), Tensors.toBytes(t));
        return TensorBlob.ofFloats(Tensors.toFloats(t), Tensors.shape(t));
    }

    /** Restores trainable tensors and optimizer state in place; returns the saved state. */
    public static State load(Path dir, Map<String, Tensor> trainable, Optimizer opt) throws IOException {
        Path stateFile = dir.resolve("trainer_state.json");
        if (!Files.exists(stateFile)) throw new HfFormatException(dir, "not a checkpoint (no trainer_state.json)");
        State state = new ObjectMapper().readValue(stateFile.toFile(), State.class);
        try (Safetensors t = Safetensors.open(dir.resolve("trainable.safetensors"));
             Safetensors o = Safetensors.open(dir.resolve("optimizer.safetensors"));
             PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (var e : trainable.entrySet()) copyInto(t, e.getKey(), e.getValue());
            for (var e : opt.state().entrySet()) copyInto(o, e.getKey(), e.getValue());
            opt.setSteps(o.longs("step")[0]);
        }
        return state;
    }

    private static void copyInto(Safetensors st, String name, Tensor target) {
        long[] shape = Tensors.shape(target);
        if (!st.contains(name)) throw new HfFormatException(st.file(), "no tensor '" + name + "' (was the checkpoint written with another --optim?)");
        if (!Arrays.equals(st.info(name).shape(), shape))
            throw new HfFormatException(st.file(), "tensor '" + name + "': expected shape " + Arrays.toString(shape) + ", found " + Arrays.toString(st.info(name).shape()));
        if (st.info(name).dtype() == DType.U8) {
            byte[] b = new byte[(int) st.info(name).numel()];
            st.bytes(name).asByteBuffer().get(b);
            target.copy_(Tensor.create(b, shape));
        } else target.copy_(Tensors.floats(st.floats(name), shape));
    }

    /** Reads a checkpoint's trainer_state.json; a missing or unreadable one is named. */
    public static State readState(Path dir) {
        Path f = dir.resolve("trainer_state.json");
        if (!Files.isRegularFile(f)) throw new HfFormatException(dir, "not a checkpoint (no trainer_state.json)");
        try {
            return new ObjectMapper().readValue(f.toFile(), State.class);
        } catch (IOException e) {
            String why = e instanceof com.fasterxml.jackson.core.JsonProcessingException j ? j.getOriginalMessage() : e.getMessage();
            throw new HfFormatException(f, "unreadable (truncated or corrupt): " + why);
        }
    }

    /** Why {@code dir} is not a complete checkpoint (state, tensors and optimizer files whole), or null when it is. */
    public static String problem(Path dir) {
        try {
            readState(dir);
            for (String f : List.of("trainable.safetensors", "optimizer.safetensors")) {
                if (!Files.isRegularFile(dir.resolve(f))) return dir.resolve(f) + ": missing";
                Safetensors.open(dir.resolve(f)).close(); // header, offsets and file size agree
            }
            return null;
        } catch (HfFormatException e) {
            return e.getMessage();
        }
    }

    /**
     * The newest complete checkpoint, or null when there is none. Newer incomplete ones (a truncated file, a disk that
     * filled up) are renamed {@code step-N.broken}, kept for inspection but out of retention and resume, and reported.
     */
    public Path latestGood(java.util.function.Consumer<String> warn) throws IOException {
        var all = new ArrayList<>(list());
        all.sort(Comparator.comparingLong(Checkpoints::stepOf).reversed());
        for (Path p : all) {
            String why = problem(p);
            if (why == null) return p;
            Path aside = p.resolveSibling(p.getFileName() + ".broken");
            for (int i = 1; Files.exists(aside); i++) aside = p.resolveSibling(p.getFileName() + ".broken-" + i);
            java.nio.file.Files.move(p, aside, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            warn.accept("warning: checkpoint " + p + " is incomplete (" + why + "); renamed to " + aside.getFileName() + ", trying the one before it");
        }
        return null;
    }

    /** The checkpoint with the highest step, or null. */
    public Path latest() throws IOException {
        return list().stream().max(Comparator.comparingLong(Checkpoints::stepOf)).orElse(null);
    }

    List<Path> list() throws IOException {
        if (!Files.isDirectory(root)) return List.of();
        try (Stream<Path> s = Files.list(root)) {
            return s.filter(p -> p.getFileName().toString().matches("step-\\d+")).toList();
        }
    }

    static long stepOf(Path p) {
        return Long.parseLong(p.getFileName().toString().substring(5));
    }

    /** Keeps the best keepBest by validation loss and the last keepLast; deletes the rest. */
    void prune() throws IOException {
        var all = new ArrayList<>(list());
        all.sort(Comparator.comparingLong(Checkpoints::stepOf));
        var keep = new HashSet<Path>(all.subList(Math.max(0, all.size() - keepLast), all.size()));
        var byLoss = new ArrayList<Path>();
        for (Path p : all) if (!Double.isNaN(valLoss(p))) byLoss.add(p);
        byLoss.sort(Comparator.comparingDouble(Checkpoints::valLoss));
        keep.addAll(byLoss.subList(0, Math.min(keepBest, byLoss.size())));
        for (Path p : all) if (!keep.contains(p)) AtomicFiles.deleteTree(p);
    }

    static double valLoss(Path p) {
        try {
            return new ObjectMapper().readTree(p.resolve("trainer_state.json").toFile()).path("valLoss").asDouble(Double.NaN);
        } catch (IOException e) {
            return Double.NaN;
        }
    }
}
