package dev.tune4j.dist;

import dev.tune4j.hf.UserError;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.javacpp.SizeTPointer;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.*;
import org.bytedeco.pytorch.global.torch;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.function.Function;

/**
 * A c10d process group: the workers of one data-parallel job, found through torchrun's environment (MASTER_ADDR,
 * MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK), meeting at a {@link TCPStore} that rank 0 hosts, and talking through
 * Gloo on the CPU or NCCL on CUDA. {@link #SINGLE} is the group of one process: every collective is then a no-op, so
 * the training loop has one code path. A collective that fails (a peer died) throws {@link PeerLost} naming this rank.
 */
public final class Group implements AutoCloseable {
    /** Where this worker sits, as torchrun, Slurm scripts and Kubeflow's PyTorchJob describe it. */
    public record Topology(int rank, int world, int localRank, int localWorld, int nodeRank, String masterAddr, int masterPort) {
        /** The topology in {@code env}, or null when WORLD_SIZE is absent (one process). */
        public static Topology fromEnv(Map<String, String> env) {
            if (env.get("WORLD_SIZE") == null) {
                if (env.get("RANK") != null) throw new UserError("RANK is set (" + env.get("RANK") + ") but WORLD_SIZE is not: set both for a worker of a distributed job, or neither");
                return null;
            }
            int world = number(env, "WORLD_SIZE", 1, 1 << 20, null);
            if (world == 1) return new Topology(0, 1, 0, 1, 0, "127.0.0.1", 0);
            int rank = number(env, "RANK", 0, world - 1, null);
            int local = number(env, "LOCAL_RANK", 0, 1 << 20, "0"); // absent: one process per node (a PyTorchJob pod)
            int localWorld = number(env, "LOCAL_WORLD_SIZE", 1, 1 << 20, String.valueOf(world));
            int node = number(env, "NODE_RANK", 0, 1 << 20, "0");
            String addr = env.get("MASTER_ADDR");
            if (addr == null || addr.isBlank()) throw new UserError("MASTER_ADDR: not set (WORLD_SIZE is " + world + "): give the host of rank 0, as torchrun does");
            int port = number(env, "MASTER_PORT", 1, 65535, null);
            return new Topology(rank, world, local, localWorld, node, addr.strip(), port);
        }

        private static int number(Map<String, String> env, String name, int min, int max, String fallback) {
            String v = env.getOrDefault(name, fallback);
            if (v == null) throw new UserError(name + ": not set (WORLD_SIZE is set, so this is one worker of a distributed job; torchrun sets both)");
            try {
                int n = Integer.parseInt(v.strip());
                if (n >= min && n <= max) return n;
            } catch (NumberFormatException e) {
                // named below
            }
            throw new UserError(name + ": expected an integer from " + min + " to " + max + ", found '" + v + "'");
        }
    }

    /** A collective failed: a peer died, was killed, or stopped answering within the timeout. */
    public static final class PeerLost extends RuntimeException {
        PeerLost(String message) {
            super(message);
        }
    }

    public static final Group SINGLE = new Group(new Topology(0, 1, 0, 1, 0, "127.0.0.1", 0), null, null, Duration.ZERO);

    /** PyTorch DDP's default bucket_cap_mb: gradients travel in flat buckets of at most this many bytes. */
    public static final long BUCKET_BYTES = 25L << 20;

    public final Topology topology;
    private final Store store;
    private final Backend backend;
    private final Duration timeout;

    private Group(Topology topology, Store store, Backend backend, Duration timeout) {
        this.topology = topology;
        this.store = store;
        this.backend = backend;
        this.timeout = timeout;
    }

    /**
     * Joins the job described by the environment (one process when WORLD_SIZE is absent or 1): rank 0 hosts the store,
     * every rank waits up to {@code timeout} for all WORLD_SIZE workers to arrive, then the Gloo (or, with {@code cuda},
     * NCCL on device LOCAL_RANK) group is formed.
     */
    public static Group join(Map<String, String> env, Duration timeout, boolean cuda) {
        Topology t = Topology.fromEnv(env);
        if (t == null || t.world() == 1) return SINGLE;
        String where = t.masterAddr() + ":" + t.masterPort();
        var options = new TCPStoreOptions();
        options.port((short) t.masterPort()).isServer(t.rank() == 0).waitWorkers(false).timeout(new Milliseconds(timeout.toMillis()));
        options.numWorkers(new SizeTPointer(1).put(t.world()));
        Store store;
        try {
            store = new TCPStore(t.masterAddr(), options);
        } catch (RuntimeException e) {
            throw new PeerLost("rank " + t.rank() + ": rendezvous: " + (t.rank() == 0 ? "could not host the store at " + where : "could not reach rank 0's store at " + where
                    + " within " + timeout.toSeconds() + " s") + " (" + clean(e.getMessage()) + ")");
        }
        // every worker counts itself in, then waits for the rest: a peer that never comes is named, not waited on forever
        long arrived = store.add("tune4j/arrived", 1), deadline = System.nanoTime() + timeout.toNanos();
        while (arrived < t.world()) {
            if (System.nanoTime() > deadline)
                throw new PeerLost("rank " + t.rank() + ": rendezvous at " + where + ": " + arrived + " of " + t.world() + " workers arrived within "
                        + timeout.toSeconds() + " s (is every worker started with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE? --dist-timeout sets the wait)");
            sleep(50);
            arrived = store.add("tune4j/arrived", 0);
        }
        Backend backend;
        if (cuda) {
            org.bytedeco.pytorch.global.torch_cuda.set_device((byte) t.localRank()); // one GPU per local rank, as torchrun's convention
            var o = new org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options();
            o.timeout(new Milliseconds(timeout.toMillis()));
            backend = new org.bytedeco.pytorch.nccl.ProcessGroupNCCL(store, t.rank(), t.world(), o);
        } else {
            var o = new ProcessGroupGloo.Options(new Milliseconds(timeout.toMillis()));
            var devices = new GlooDeviceVector();
            String ifname = env.get("GLOO_SOCKET_IFNAME"); // torch's way to pick the network interface
            boolean local = t.masterAddr().equals("127.0.0.1") || t.masterAddr().equals("localhost");
            devices.push_back(ifname != null ? ProcessGroupGloo.createDeviceForInterface(ifname)
                    : local ? ProcessGroupGloo.createDeviceForHostname("127.0.0.1") : ProcessGroupGloo.createDefaultDevice());
            o.devices(devices);
            backend = new ProcessGroupGloo(store, t.rank(), t.world(), o);
        }
        return new Group(t, store, backend, timeout);
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new PeerLost("interrupted while waiting for the other workers");
        }
    }

    public int rank() {
        return topology.rank();
    }

    public int world() {
        return topology.world();
    }

    /** Rank 0: the one that writes logs, checkpoints and results. */
    public boolean leader() {
        return topology.rank() == 0;
    }

    public boolean single() {
        return backend == null;
    }

    /** Sums each tensor over the ranks, in place, in flat buckets of at most {@link #BUCKET_BYTES}. */
    public void allReduce(List<Tensor> tensors) {
        if (single() || tensors.isEmpty()) return;
        bucketed(tensors, v -> backend.allreduce(v, new AllreduceOptions().reduceOp(new ReduceOp(ReduceOp.RedOpType.SUM))), "all-reduce");
    }

    /** Sums each tensor over the ranks into rank {@code root}'s copy (the others' copies are left undefined in content). */
    public void reduce(List<Tensor> tensors, int root) {
        if (single() || tensors.isEmpty()) return;
        bucketed(tensors, v -> backend.reduce(v, new ReduceOptions().rootRank(root).reduceOp(new ReduceOp(ReduceOp.RedOpType.SUM))), "reduce to rank " + root);
    }

    /** Rank {@code root}'s tensors, copied into every rank's. */
    public void broadcast(List<Tensor> tensors, int root) {
        if (single() || tensors.isEmpty()) return;
        bucketed(tensors, v -> backend.broadcast(v, new BroadcastOptions().rootRank(root)), "broadcast from rank " + root);
    }

    /** Point to point: this rank's tensor to rank {@code to} (which calls {@link #receive}). */
    public void send(Tensor t, int to) {
        waitFor(() -> backend.send(new TensorVector(t), to, 0), "send to rank " + to);
    }

    public void receive(Tensor t, int from) {
        waitFor(() -> backend.recv(new TensorVector(t), from, 0), "receive from rank " + from);
    }

    public void barrier() {
        if (!single()) waitFor(() -> backend.barrier(), "barrier");
    }

    /**
     * ZeRO's partition: which rank owns each of the tensors (sizes in elements), as contiguous runs balanced by size —
     * a tensor belongs to the rank whose share of the total its middle falls in.
     */
    public static int[] owners(long[] sizes, int world) {
        long total = Arrays.stream(sizes).sum(), before = 0;
        int[] owner = new int[sizes.length];
        for (int i = 0; i < sizes.length; i++) {
            double middle = before + sizes[i] / 2.0;
            owner[i] = total == 0 ? 0 : (int) Math.min(world - 1, Math.floor(middle * world / total));
            before += sizes[i];
        }
        return owner;
    }

    /** Each value summed over the ranks (losses, token counts, metric sums). */
    public double[] sum(double... values) {
        if (single()) return values.clone();
        try (PointerScope s = new PointerScope()) {
            Tensor t = Tensor.create(values.clone(), values.length);
            allReduce(List.of(t));
            double[] out = new double[values.length];
            t.contiguous().data_ptr_double().get(out);
            return out;
        }
    }

    /** Each rank's value, by rank (per-rank peak memory). */
    public double[] gather(double value) {
        double[] mine = new double[world()];
        mine[rank()] = value;
        return sum(mine);
    }

    /**
     * Metric sums by name over the ranks; a name only some ranks have (a rank whose rows had no such label) counts 0 on
     * the others. The names travel as text: every rank sends its own row of one byte matrix, summed.
     */
    public Map<String, Double> sum(Map<String, Double> values) {
        if (single()) return new TreeMap<>(values);
        var sb = new StringBuilder();
        values.forEach((k, v) -> sb.append(k).append('=').append(Double.toString(v)).append('\n'));
        byte[] mine = sb.toString().getBytes(StandardCharsets.UTF_8);
        int width = (int) Arrays.stream(gather(mine.length)).max().orElse(0);
        var out = new TreeMap<String, Double>();
        if (width == 0) return out;
        try (PointerScope s = new PointerScope()) {
            byte[] rows = new byte[world() * width];
            System.arraycopy(mine, 0, rows, rank() * width, mine.length);
            Tensor t = Tensor.create(rows, world(), width);
            allReduce(List.of(t));
            t.contiguous().data_ptr_byte().get(rows);
            for (int r = 0; r < world(); r++)
                for (String line : new String(rows, r * width, width, StandardCharsets.UTF_8).split("\n")) {
                    int eq = line.lastIndexOf('=');
                    if (eq > 0 && line.charAt(0) != 0) out.merge(line.substring(0, eq), Double.parseDouble(line.substring(eq + 1).strip().replace("\0", "")), Double::sum);
                }
        }
        return out;
    }

    /**
     * One collective per bucket of consecutive tensors (a tensor larger than a bucket travels alone, in place); at most
     * two buckets in flight, so the flat copies add two buckets to the peak, never a second copy of every gradient.
     */
    private void bucketed(List<Tensor> tensors, Function<TensorVector, Work> op, String what) {
        var buckets = buckets(tensors, BUCKET_BYTES);
        try (PointerScope s = new PointerScope()) {
            Tensor[] flat = new Tensor[buckets.size()];
            Work[] work = new Work[buckets.size()];
            for (int i = 0; i < buckets.size(); i++) {
                var bucket = buckets.get(i);
                boolean alone = bucket.size() == 1 && bucket.getFirst().is_contiguous();
                if (alone) flat[i] = bucket.getFirst();
                else {
                    var parts = new TensorVector();
                    for (Tensor t : bucket) parts.push_back(t.reshape(-1));
                    flat[i] = torch.cat(parts);
                }
                Tensor f = flat[i];
                work[i] = launch(() -> op.apply(new TensorVector(f)), what);
                if (i >= 1) finish(buckets.get(i - 1), flat[i - 1], work[i - 1], what);
            }
            finish(buckets.getLast(), flat[buckets.size() - 1], work[buckets.size() - 1], what);
        }
    }

    /** Consecutive tensors of one dtype, at most {@code cap} bytes together (a larger tensor alone). */
    static List<List<Tensor>> buckets(List<Tensor> tensors, long cap) {
        var buckets = new ArrayList<List<Tensor>>();
        var current = new ArrayList<Tensor>();
        long bytes = 0;
        for (Tensor t : tensors) {
            long b = t.numel() * t.element_size();
            // intern(): scalar_type() wraps the enum in a new object each call (identity never matched: one bucket per tensor)
            if (!current.isEmpty() && (bytes + b > cap || t.scalar_type().intern() != current.getFirst().scalar_type().intern())) {
                buckets.add(current);
                current = new ArrayList<>();
                bytes = 0;
            }
            current.add(t);
            bytes += b;
        }
        if (!current.isEmpty()) buckets.add(current);
        return buckets;
    }

    private void finish(List<Tensor> bucket, Tensor flat, Work work, String what) {
        waitFor(() -> work, what);
        if (bucket.size() == 1 && bucket.getFirst().is_contiguous()) return; // reduced in place
        long at = 0;
        try (NoGradGuard ng = new NoGradGuard()) {
            for (Tensor t : bucket) {
                long n = t.numel();
                t.copy_(flat.narrow(0, at, n).view_as(t));
                at += n;
            }
        }
    }

    private Work launch(java.util.function.Supplier<Work> start, String what) {
        try {
            return start.get();
        } catch (RuntimeException e) {
            throw lost(what, e);
        }
    }

    private void waitFor(java.util.function.Supplier<Work> start, String what) {
        Work w = launch(start, what);
        try {
            w._wait(new Milliseconds(timeout.toMillis()));
        } catch (RuntimeException e) {
            throw lost(what, e);
        }
    }

    private PeerLost lost(String what, RuntimeException e) {
        return new PeerLost("rank " + rank() + " of " + world() + ": " + what + " failed: " + clean(e.getMessage())
                + " — another worker stopped (killed, crashed or out of memory) or stopped answering within " + timeout.toSeconds() + " s; see its output");
    }

    /** libtorch's messages start with the source file that raised them ("[/…/pair.cc:547] Connection closed by peer"). */
    static String clean(String message) {
        if (message == null) return "no message";
        String m = message.replaceAll("\\[[^\\]]*\\.(cc|cpp|h):\\d+\\]\\s*", "").strip();
        int nl = m.indexOf('\n');
        return nl > 0 ? m.substring(0, nl) : m;
    }

    @Override
    public void close() {
        if (single()) return;
        backend.close();
        store.close();
    }
}
