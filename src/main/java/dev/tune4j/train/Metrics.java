package dev.tune4j.train;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/** metrics.jsonl: one JSON object per logged step or evaluation, flushed as written (safe to tail during a run). */
public final class Metrics implements AutoCloseable {
    private final BufferedWriter out;
    private final ObjectMapper json = new ObjectMapper();

    public Metrics(Path file, boolean append) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
    }

    /** The record every training step logs. */
    public static Map<String, Object> step(long step, double epoch, double loss, double lr, double gradNorm, double tokensPerSecond) {
        var rec = new java.util.LinkedHashMap<String, Object>();
        rec.put("step", step);
        rec.put("epoch", round(epoch, 4));
        rec.put("loss", round(loss, 6));
        rec.put("lr", lr);
        rec.put("grad_norm", round(gradNorm, 6));
        rec.put("tokens_per_s", round(tokensPerSecond, 1));
        return rec;
    }

    public static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    /** Writes the record to metrics.jsonl and its scalars to TensorBoard. */
    public void log(Map<String, Object> record, TensorBoard tb) throws IOException {
        log(record);
        long step = ((Number) record.get("step")).longValue();
        for (var e : record.entrySet()) // every scalar, preference metrics included: eval_x goes to eval/x
            if (e.getValue() instanceof Number n && !e.getKey().equals("step") && !e.getKey().equals("epoch"))
                tb.scalar(e.getKey().startsWith("eval_") ? "eval/" + e.getKey().substring(5) : "train/" + e.getKey(), n.doubleValue(), step);
    }

    public void log(Map<String, Object> record) throws IOException {
        out.write(json.writeValueAsString(record));
        out.newLine();
        out.flush();
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
