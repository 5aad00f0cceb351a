package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.tensor.Compute;
import dev.tune4j.text.Tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;

/** A model folder opened for inference: weights, tokenizer (if the folder has one) and its end-of-sequence ids. */
record LoadedModel(ModelFolder folder, LlamaModel model, Tokenizer tokenizer, LoraAdapter adapter) implements AutoCloseable {
    static LoadedModel open(Path dir) {
        return open(dir, null);
    }

    /** @param adapterDir a PEFT LoRA adapter folder to attach, or null */
    static LoadedModel open(Path dir, Path adapterDir) {
        ModelFolder f = ModelFolder.open(dir);
        try {
            long t0 = System.nanoTime();
            LlamaModel m;
            try (var bar = dev.tune4j.train.StepProgress.bytes("loading " + dir.getFileName(), f.totalBytes())) {
                m = f.bitsandbytes4bit() ? dev.tune4j.quant.FourBit.load(f, Compute.auto()) : LlamaModel.load(f, Compute.auto(), bar::step);
            }
            Tokenizer tok = Files.exists(dir.resolve("tokenizer.json")) ? Tokenizer.load(dir) : null;
            LoraAdapter lora = null;
            if (adapterDir != null) {
                try {
                    lora = LoraAdapter.load(adapterDir, m);
                } catch (RuntimeException e) {
                    m.close();
                    throw e;
                }
            }
            f.close(); // weights copied out: unmap the files (their pages would count in RSS); dir and config stay readable
            System.err.printf("loaded %s%s: %,d parameters on %s in %.2f s%n", dir, lora == null ? "" : " + LoRA " + adapterDir,
                    m.parameterCount(), m.compute.describe(), (System.nanoTime() - t0) / 1e9);
            return new LoadedModel(f, m, tok, lora);
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
    }

    Tokenizer requireTokenizer() {
        if (tokenizer == null) throw new UserError(folder.dir() + ": no tokenizer.json (needed to turn text into tokens)");
        return tokenizer;
    }

    /** generation_config.json's eos_token_id, else config.json's, plus the tokenizer's eos_token. */
    List<Integer> eosIds() {
        var ids = new LinkedHashSet<Integer>();
        Path gen = folder.dir().resolve("generation_config.json");
        if (Files.exists(gen)) {
            try {
                JsonNode e = new ObjectMapper().readTree(gen.toFile()).path("eos_token_id");
                if (e.isArray()) e.forEach(x -> ids.add(x.asInt()));
                else if (e.isIntegralNumber()) ids.add(e.asInt());
            } catch (IOException ex) {
                throw new UserError(gen + ": not valid JSON: " + ex.getMessage());
            }
        }
        ids.addAll(folder.config().eosTokenIds());
        if (tokenizer != null && tokenizer.specialId("eos_token") != null) ids.add(tokenizer.specialId("eos_token"));
        return new ArrayList<>(ids);
    }

    @Override
    public void close() {
        if (adapter != null) adapter.close();
        model.close();
        if (tokenizer != null) tokenizer.close();
        folder.close();
    }
}
