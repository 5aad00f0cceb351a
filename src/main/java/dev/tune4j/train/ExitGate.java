package dev.tune4j.train;

/**
 * Lets the JVM exit (SIGTERM, Ctrl-C) only between training steps. Exiting while libtorch computes on the main thread
 * crashes in libtorch's static destructors (a SIGSEGV and an hs_err file); so a shutdown waits, up to a minute, for the
 * step under way to end, and a thread that reaches the next step after that never starts it.
 */
final class ExitGate {
    private static final Object LOCK = new Object();
    private static int busy;
    private static boolean exiting;

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(ExitGate::drain, "tune4j-exit-gate"));
    }

    private ExitGate() {}

    /** Before a step's native work; blocks for good once the JVM is exiting. */
    static void enter() {
        synchronized (LOCK) {
            while (exiting) {
                try {
                    LOCK.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            busy++;
        }
    }

    static void leave() {
        synchronized (LOCK) {
            busy--;
            LOCK.notifyAll();
        }
    }

    private static void drain() {
        synchronized (LOCK) {
            exiting = true;
            if (busy > 0) System.err.println("\nstopping: the step under way finishes first (continue later with --resume)");
            long end = System.nanoTime() + 60_000_000_000L;
            while (busy > 0 && System.nanoTime() < end) {
                try {
                    LOCK.wait(1000);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }
}
