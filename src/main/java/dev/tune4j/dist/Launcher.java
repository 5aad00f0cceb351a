package dev.tune4j.dist;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.TimeUnit;

/**
 * {@code --nproc-per-node N} on one machine, as torchrun does it: N worker JVMs running the same command with torchrun's
 * environment (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT) and the cores
 * divided between them (TUNE4J_THREADS for libtorch, OPENBLAS_NUM_THREADS for OpenBLAS's own pool, unless already set). Rank 0's output is passed through; the others' lines are prefixed with their rank. When a
 * worker fails or is killed, the others are stopped (SIGTERM, then SIGKILL) and the failure is named.
 */
public final class Launcher {
    private Launcher() {}

    /** How long stopped workers get to finish the step under way (and its checkpoint) before they are killed. */
    static final long GRACE_SECONDS = 10;

    /**
     * Runs the job and returns its exit code: 0 when every worker succeeded, else the first failure's.
     *
     * @param mainClass the entry point the workers run (the CLI's)
     * @param args      the command line, without the launcher's own flag (the workers must not launch again)
     */
    public static int run(int n, String mainClass, List<String> args, PrintStream out, PrintStream err) throws IOException, InterruptedException {
        int port;
        try (ServerSocket s = new ServerSocket(0)) { // a free port for rank 0's store (released just before rank 0 binds it)
            port = s.getLocalPort();
        }
        int cores = Runtime.getRuntime().availableProcessors();
        String threads = System.getenv("TUNE4J_THREADS") != null ? System.getenv("TUNE4J_THREADS") : String.valueOf(Math.max(1, cores / n));
        var command = new ArrayList<String>();
        command.add(ProcessHandle.current().info().command().orElse(System.getProperty("java.home") + "/bin/java"));
        command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass));
        command.addAll(args);
        var workers = new ArrayList<Process>();
        Thread stopAll = new Thread(() -> stop(workers)); // the launcher stopped (Ctrl-C, SIGTERM): its workers stop too
        Runtime.getRuntime().addShutdownHook(stopAll);
        try {
            for (int rank = 0; rank < n; rank++) {
                var pb = new ProcessBuilder(command);
                var env = pb.environment();
                env.put("WORLD_SIZE", String.valueOf(n));
                env.put("RANK", String.valueOf(rank));
                env.put("LOCAL_RANK", String.valueOf(rank));
                env.put("LOCAL_WORLD_SIZE", String.valueOf(n));
                env.put("NODE_RANK", "0");
                env.put("MASTER_ADDR", "127.0.0.1");
                env.put("MASTER_PORT", String.valueOf(port));
                env.put("TUNE4J_THREADS", threads);
                env.put("TUNE4J_LAUNCHER_PID", String.valueOf(ProcessHandle.current().pid())); // workers stop if the launcher dies
                // OpenBLAS keeps its own pool of every core (decision 0002): N workers × all cores, spinning, ran 2.5× slower
                if (System.getenv("OPENBLAS_NUM_THREADS") == null) env.put("OPENBLAS_NUM_THREADS", threads);
                if (rank == 0) pb.inheritIO();
                else pb.redirectErrorStream(true);
                Process p = pb.start();
                workers.add(p);
                if (rank > 0) prefix(p, rank, err);
            }
            var pids = new StringJoiner(", ");
            for (int r = 0; r < n; r++) pids.add("rank " + r + " pid " + workers.get(r).pid());
            err.printf("launcher: %d workers on this machine, %s thread(s) each, rendezvous at 127.0.0.1:%d (%s)%n", n, threads, port, pids);
            return await(workers, err);
        } finally {
            stop(workers);
            try {
                Runtime.getRuntime().removeShutdownHook(stopAll);
            } catch (IllegalStateException e) {
                // the JVM is already shutting down: the hook runs
            }
        }
    }

    /** Waits for every worker; on the first failure, names it (and those that followed) and stops the rest. */
    private static int await(List<Process> workers, PrintStream err) throws InterruptedException {
        record Exit(int rank, int code, long at) {}
        var exits = new java.util.concurrent.LinkedBlockingQueue<Exit>();
        for (int r = 0; r < workers.size(); r++) {
            int rank = r;
            workers.get(r).onExit().thenAccept(p -> exits.add(new Exit(rank, p.exitValue(), System.nanoTime())));
        }
        for (int done = 0; done < workers.size(); done++) {
            Exit e = exits.take();
            if (e.code() == 0) continue;
            // a worker failed: the others usually fail within moments (their next collective sees the closed connection);
            // collect those for a moment, so the first failure in time — the cause — is the one named
            var failed = new ArrayList<>(List.of(e));
            for (Exit more; (more = exits.poll(2, TimeUnit.SECONDS)) != null; ) if (more.code() != 0) failed.add(more);
            failed.sort(Comparator.comparingLong(Exit::at));
            Exit first = failed.getFirst();
            var after = new StringJoiner(", ");
            for (Exit f : failed.subList(1, failed.size())) after.add("rank " + f.rank() + " " + describe(f.code()));
            var bad = failed.stream().filter(f -> f.code() == 2).findFirst(); // bad input: the others only lost their peer
            stop(workers);
            if (bad.isPresent()) {
                err.printf("error: rank %d of %d stopped on bad input (its message is above); stopped the other workers%n", bad.get().rank(), workers.size());
                return 2; // as in one process
            }
            err.printf("error: rank %d of %d %s%s; stopped the other workers. Continue from the last checkpoint with --resume latest%n",
                    first.rank(), workers.size(), describe(first.code()), after.length() == 0 ? "" : " (then " + after + ")");
            return 1;
        }
        return 0;
    }

    /**
     * In a worker the launcher started: stops this process when the launcher is gone (killed with SIGKILL, it could not
     * stop its workers), so no worker trains on for hours without a parent.
     */
    public static void watchLauncher() {
        String pid = System.getenv("TUNE4J_LAUNCHER_PID");
        if (pid == null || !pid.matches("\\d{1,12}")) return;
        var launcher = ProcessHandle.of(Long.parseLong(pid));
        if (launcher.isEmpty()) return;
        launcher.get().onExit().thenRun(() -> {
            System.err.println("error: the launcher (pid " + pid + ") is gone; this worker stops");
            Runtime.getRuntime().halt(1);
        });
    }

    /** Java reports a process killed by signal s as exit code 128 + s. */
    static String describe(int code) {
        if (code > 128 && code < 160) {
            int sig = code - 128;
            String name = switch (sig) {
                case 9 -> "SIGKILL";
                case 15 -> "SIGTERM";
                case 6 -> "SIGABRT";
                case 11 -> "SIGSEGV";
                case 2 -> "SIGINT";
                default -> "signal " + sig;
            };
            return "was killed by " + name + (sig == 9 ? " (kill -9, or the kernel's out-of-memory killer)" : "");
        }
        return "exited with code " + code;
    }

    private static void prefix(Process p, int rank, PrintStream err) {
        Thread.ofVirtual().start(() -> {
            try (var in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) err.println("[rank " + rank + "] " + line);
            } catch (IOException e) {
                // the worker is gone; its exit code tells the rest
            }
        });
    }

    /** SIGTERM (a worker finishes its step, writes its checkpoint if due, and exits), then SIGKILL after the grace period. */
    private static void stop(List<Process> workers) {
        for (Process p : workers) if (p.isAlive()) p.destroy();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(GRACE_SECONDS);
        for (Process p : workers) {
            try {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !p.waitFor(left, TimeUnit.NANOSECONDS)) p.destroyForcibly();
            } catch (InterruptedException e) {
                p.destroyForcibly();
            }
        }
    }
}
