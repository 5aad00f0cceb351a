package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.Safetensors;
import dev.tune4j.hf.SafetensorsWriter;
import dev.tune4j.hf.TensorBlob;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.Callable;

/** fp32 logits of a batch, for parity checks against transformers. */
@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Write the fp32 logits [batch, seq, vocab] of token ids to a safetensors file (tensor 'logits').")
final class LogitsCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "model folder")
    Path model;

    @Option(names = "--adapter", description = "PEFT LoRA adapter folder to apply (e.g. a run's adapter/)")
    Path adapter;

    @Option(names = "--input", required = true, description = "a JSON list of ids ([1,2,3] or [[...],[...]]), a .json file holding one, "
            + "or a .safetensors file with input_ids [batch, seq] and optional attention_mask and position_ids")
    String input;

    @Option(names = "--out", required = true, description = "safetensors file to write")
    Path out;

    @Option(names = "--overwrite", description = "replace an existing non-empty --out file")
    boolean overwrite;

    record Batch(long[] ids, long[] mask, long[] positions, long b, long t) {}

    @Override
    public Integer call() throws Exception {
        var inputs = new java.util.ArrayList<Path>(java.util.Arrays.asList(model, adapter));
        if (input.endsWith(".safetensors") || input.endsWith(".json")) inputs.add(Path.of(input));
        dev.tune4j.hf.OutputPaths.check(out, dev.tune4j.hf.OutputPaths.Kind.FILE, overwrite, "pass --overwrite to replace it", inputs);
        Batch batch = readInput();
        try (LoadedModel lm = LoadedModel.open(model, adapter); PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            var c = lm.model().compute;
            int v = lm.model().config.vocabSize();
            for (long id : batch.ids())
                if (id < 0 || id >= v) throw new UserError("--input " + input + ": token id " + id + " is outside the vocabulary [0, " + v + ")");
            Tensor ids = c.placeIndex(Tensors.longs(batch.ids(), batch.b(), batch.t()));
            Tensor mask = batch.mask() == null ? null : c.placeIndex(Tensors.longs(batch.mask(), batch.b(), batch.t()));
            Tensor pos = batch.positions() == null ? null : c.placeIndex(Tensors.longs(batch.positions(), batch.b(), batch.t()));
            float[] logits = Tensors.toFloats(lm.model().logits(ids, pos, mask));
            SafetensorsWriter.write(out, Map.of("logits", TensorBlob.ofFloats(logits, batch.b(), batch.t(), v)), SafetensorsWriter.PT_METADATA);
            System.err.printf("wrote %s: logits [%d, %d, %d]%n", out, batch.b(), batch.t(), v);
        }
        return 0;
    }

    Batch readInput() throws IOException {
        if (input.endsWith(".safetensors")) {
            try (Safetensors st = Safetensors.open(Path.of(input))) {
                long[] shape = st.info("input_ids").shape();
                if (shape.length != 2) throw new UserError(input + ": input_ids must be [batch, seq], found " + Arrays.toString(shape));
                long[] mask = optional(st, "attention_mask", shape), pos = optional(st, "position_ids", shape);
                return new Batch(st.longs("input_ids"), mask, pos, shape[0], shape[1]);
            }
        }
        String json = input.strip().startsWith("[") ? input : Files.readString(Path.of(input));
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new UserError(input + ": not valid JSON: " + e.getMessage());
        }
        if (root == null || !root.isArray() || root.isEmpty()) throw new UserError(input + ": expected a non-empty JSON list of token ids");
        JsonNode rows = root.get(0).isArray() ? root : new ObjectMapper().createArrayNode().add(root);
        long t = rows.get(0).size();
        long[] ids = new long[(int) (rows.size() * t)];
        for (int r = 0; r < rows.size(); r++) {
            if (rows.get(r).size() != t) throw new UserError(input + ": row " + r + " has " + rows.get(r).size() + " ids, row 0 has " + t + " (pad rows and pass a mask in a safetensors file)");
            for (int j = 0; j < t; j++) {
                JsonNode x = rows.get(r).get(j);
                if (!x.isIntegralNumber()) throw new UserError(input + ": row " + r + " position " + j + ": expected an integer id, found " + x);
                ids[(int) (r * t + j)] = x.asLong();
            }
        }
        return new Batch(ids, null, null, rows.size(), t);
    }

    private long[] optional(Safetensors st, String name, long[] shape) {
        if (!st.contains(name)) return null;
        if (!Arrays.equals(st.info(name).shape(), shape))
            throw new UserError(input + ": " + name + " has shape " + Arrays.toString(st.info(name).shape()) + ", input_ids " + Arrays.toString(shape));
        return st.longs(name);
    }
}
