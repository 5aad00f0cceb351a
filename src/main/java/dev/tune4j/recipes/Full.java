package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.DType;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.tensor.Compute;
import dev.tune4j.train.TrainConfig;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Full fine-tuning: every weight trained (weight decay on matrices only, fp32 state), the result a Hugging Face model
 * folder with the base's tokenizer and generation config. A preference stage's reference log-probs are computed once,
 * before training, from the weights as loaded (only one model in memory); KTO, whose KL rows change with every batch,
 * gets a frozen copy of the starting weights instead.
 */
final class Full implements Run.Method {
    private final LlamaModel model;
    private final Path source;
    private LlamaModel reference; // loaded only for KTO, whose reference cannot be precomputed

    private Full(LlamaModel model, Path source) {
        this.model = model;
        this.source = source;
    }

    static LlamaModel load(TrainConfig c, ModelFolder folder, Compute compute) {
        if (folder.bitsandbytes4bit()) throw new UserError(c.model() + " is a 4-bit checkpoint: full fine-tuning needs the unquantized weights");
        return LlamaModel.load(folder, compute);
    }

    static Full attach(TrainConfig c, LlamaModel model, PrintStream log) {
        model.trainAll();
        log.printf("model: %s, %,d parameters, all trainable%n", model.config.arch().className, model.parameterCount());
        return new Full(model, c.model());
    }

    @Override
    public LinkedHashMap<String, Tensor> parameters() {
        return model.namedTensors();
    }

    @Override
    public double weightDecay(String name, Tensor p, double decay) {
        return p.dim() >= 2 ? decay : 0.0; // no decay on norms
    }

    @Override
    public void train(boolean on) {
    }

    @Override
    public void saveInto(Path checkpointDir) {
    } // the weights are the checkpoint's state

    @Override
    public Path save(Path out) throws IOException {
        model.requireGrad(false);
        Path dir = out.resolve("model");
        model.save(dir, DType.F32, 5_000_000_000L);
        for (String f : List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"))
            if (Files.exists(source.resolve(f))) Files.copy(source.resolve(f), dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        return dir;
    }

    @Override
    public void toReference() {
        throw new IllegalStateException("full fine-tuning keeps no second model: its reference log-probs are precomputed");
    }

    @Override
    public void toPolicy() {
    }

    @Override
    public LlamaModel referenceCopy() {
        if (reference == null)
            try (ModelFolder f = ModelFolder.open(source)) {
                reference = dev.tune4j.model.Bf16Weight.load(f, model.compute, b -> {}).model(); // frozen: its weights never require grad
            }
        return reference;
    }

    @Override
    public LoraAdapter adapter() {
        return null;
    }

    @Override
    public long trainableCount() {
        return model.parameterCount();
    }

    @Override
    public void close() {
        if (reference != null) reference.close();
        model.requireGrad(false);
    }
}
