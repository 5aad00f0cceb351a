package dev.tune4j.recipes;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.peft.LoraAdapter;
import dev.tune4j.peft.LoraConfig;
import dev.tune4j.quant.FourBit;
import dev.tune4j.quant.Quantizer;
import dev.tune4j.tensor.Compute;
import dev.tune4j.train.TrainConfig;
import dev.tune4j.train.Trainer;
import org.bytedeco.pytorch.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;

/**
 * LoRA, QLoRA and DoRA: a frozen base (4-bit for QLoRA: a bitsandbytes folder as stored, or quantized on load), an
 * adapter named "default" on the target projections (new, or initialised from --adapter), AdamW on the adapter only,
 * and a PEFT adapter folder as the result. A preference stage's reference is the base with the adapter off, or the
 * --adapter it started from, kept frozen under the name "reference" (TRL's behaviour).
 */
final class Adapters implements Run.Method {
    private final LlamaModel model;
    final LoraAdapter lora;
    private final LoraAdapter reference; // the frozen starting adapter, or null (reference = adapter off)

    private Adapters(LlamaModel model, LoraAdapter lora, LoraAdapter reference) {
        this.model = model;
        this.lora = lora;
        this.reference = reference;
    }

    static LlamaModel load(TrainConfig c, ModelFolder folder, Compute compute, PrintStream log) {
        if (folder.bitsandbytes4bit() && !c.method().equals("qlora"))
            throw new UserError(c.model() + " is a 4-bit checkpoint: train it with --method qlora");
        if (folder.bitsandbytes4bit()) {
            log.println("qlora: loaded the 4-bit checkpoint as stored (no re-quantization)");
            return FourBit.load(folder, compute);
        }
        // bf16 GEMMs use bf16 weights as they are; the fp32 path upcasts them per use, which only a checkpointed run frees early
        if (c.method().equals("lora") && (c.gradientCheckpointing() || compute.mixed())) {
            var loaded = dev.tune4j.model.Bf16Weight.load(folder, compute, b -> {});
            if (loaded.bf16Bytes() > 0)
                log.printf("lora: the frozen projections are kept in bf16 (%.0f MiB instead of %.0f MiB in fp32), %s%n",
                        loaded.bf16Bytes() / 1048576.0, 2 * loaded.bf16Bytes() / 1048576.0, compute.mixed() ? "their GEMMs in bf16" : "upcast per use");
            return loaded.model();
        }
        if (c.method().equals("qlora")) {
            Quantizer.checkBlocksize(c.blocksize());
            var q = FourBit.loadQuantizing(folder, compute, c.quant(), c.blocksize(), c.doubleQuant());
            var sizes = q.sizes();
            log.printf("qlora: %d projections in %s%s (block %d): %.1f MiB → %.1f MiB (%.3f of fp32)%n", sizes.tensors(), c.quant(),
                    c.doubleQuant() ? " + double quantization" : "", c.blocksize(), sizes.denseBytes() / 1048576.0, sizes.quantizedBytes() / 1048576.0, sizes.ratio());
            return q.model();
        }
        return LlamaModel.load(folder, compute);
    }

    static Adapters attach(TrainConfig c, LlamaModel model, PrintStream log) {
        LoraAdapter lora, reference = null;
        if (c.adapter() != null) {
            lora = LoraAdapter.load(c.adapter(), model, "default");
            lora.setDropout(c.loraDropout());
            var own = lora.config;
            if (own.r() != c.r() || own.alpha() != c.loraAlpha() || !own.targetModules().equals(c.targetModules()) || own.rslora() != c.useRslora() || own.useDora() != c.useDora())
                log.printf("adapter: r=%d, lora_alpha=%s, target_modules=%s, use_rslora=%s, use_dora=%s come from %s (the run's LoRA shape keys do not change a loaded adapter)%n",
                        own.r(), own.alpha(), own.targetModules(), own.rslora(), own.useDora(), c.adapter());
            if (c.preference()) {
                reference = LoraAdapter.load(c.adapter(), model, "reference");
                reference.enable(false);
            }
            log.printf("adapter: starting from %s%s%n", c.adapter(), reference == null ? "" : " (also the frozen reference)");
        } else {
            var cfg = new LoraConfig(c.r(), c.loraAlpha(), c.loraDropout(), c.targetModules(), c.useRslora(), c.useDora());
            lora = LoraAdapter.create(model, cfg, c.seed(), c.model().toAbsolutePath().toString(), "default");
        }
        log.printf("model: %s, %,d parameters (frozen); %s r=%d alpha=%s on %d modules: %,d trainable (%.3f%%)%n",
                model.config.arch().className, model.parameterCount(), lora.config.useDora() ? "DoRA" : "LoRA", lora.config.r(), lora.config.alpha(), lora.modules().size(),
                lora.trainableParameterCount(), 100.0 * lora.trainableParameterCount() / model.parameterCount());
        return new Adapters(model, lora, reference);
    }

    @Override
    public LinkedHashMap<String, Tensor> parameters() {
        return lora.namedParameters();
    }

    @Override
    public double weightDecay(String name, Tensor p, double decay) {
        return decay;
    }

    @Override
    public void train(boolean on) {
        lora.train(on);
    }

    @Override
    public void saveInto(Path checkpointDir) throws IOException {
        lora.save(checkpointDir.resolve("adapter"));
    }

    @Override
    public Path save(Path out) throws IOException {
        Path dir = out.resolve("adapter");
        lora.save(dir);
        return dir;
    }

    @Override
    public void toReference() {
        lora.enable(false);
        if (reference != null) reference.enable(true);
    }

    @Override
    public void toPolicy() {
        if (reference != null) reference.enable(false);
        lora.enable(true);
    }

    @Override
    public LlamaModel referenceCopy() {
        return null;
    }

    @Override
    public LoraAdapter adapter() {
        return lora;
    }

    @Override
    public long trainableCount() {
        return lora.trainableParameterCount();
    }

    @Override
    public void close() {
        if (reference != null) reference.close();
        lora.close();
    }
}
