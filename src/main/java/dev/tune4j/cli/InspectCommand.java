package dev.tune4j.cli;

import dev.tune4j.hf.UserError;
import dev.tune4j.hf.ModelConfig;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.hf.TensorInfo;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/** Architecture, parameter counts per module type, dtypes and bytes of a model folder; reads headers only (no libtorch). */
@Command(name = "inspect", mixinStandardHelpOptions = true, description = "Describe a Hugging Face model folder: architecture, parameters per module type, dtypes, bytes.")
final class InspectCommand implements Callable<Integer> {
    @Parameters(paramLabel = "MODEL", arity = "0..1", description = "model folder (config.json + safetensors)")
    Path model;

    @picocli.CommandLine.Option(names = "--adapter", description = "a PEFT LoRA adapter folder: print the singular-value spectrum of every update")
    Path adapter;

    @Override
    public Integer call() throws Exception {
        if (model == null && adapter == null) throw new UserError("give a MODEL folder, --adapter DIR, or both");
        if (adapter != null) {
            var mods = dev.tune4j.eval.Spectrum.ofFolder(adapter);
            System.out.println(adapter + ": " + mods.size() + " LoRA modules; spectrum of each update scaling·B·A");
            System.out.print(dev.tune4j.eval.Spectrum.table(mods));
            long warnings = mods.stream().filter(m -> m.warning() != null).count();
            System.out.println(warnings == 0 ? "no warnings" : warnings + " module(s) with warnings");
            if (model == null) return 0;
        }
        try (ModelFolder f = ModelFolder.open(model)) {
            f.validate();
            ModelConfig c = f.config();
            System.out.printf("%s (%s)%n", model, c.arch().className);
            System.out.printf("  layers %d, hidden %d, intermediate %d, heads %d, kv heads %d, head_dim %d, vocab %d%n",
                    c.numLayers(), c.hiddenSize(), c.intermediateSize(), c.numHeads(), c.numKvHeads(), c.headDim(), c.vocabSize());
            System.out.printf("  rope theta %s, scaling %s, max positions %d, rms eps %s, tied embeddings %s%s%n", c.ropeTheta(),
                    c.ropeScaling().type(), c.maxPositionEmbeddings(), c.rmsNormEps(), c.tieWordEmbeddings(),
                    c.slidingWindow() > 0 ? ", sliding window " + c.slidingWindow() : "");
            var byType = new TreeMap<String, long[]>();
            long total = 0;
            for (String n : f.names()) {
                if (c.tieWordEmbeddings() && n.equals("lm_head.weight")) continue;
                TensorInfo t = f.info(n);
                long[] acc = byType.computeIfAbsent(moduleType(n), k -> new long[2]);
                acc[0] += t.numel();
                acc[1] += t.byteSize();
                total += t.numel();
            }
            System.out.println("  parameters by module type:");
            for (Map.Entry<String, long[]> e : byType.entrySet())
                System.out.printf("    %-32s %,15d  %s%n", e.getKey(), e.getValue()[0], bytes(e.getValue()[1]));
            System.out.printf("    %-32s %,15d  %s%n", "total", total, bytes(f.totalBytes()));
            if (c.tieWordEmbeddings()) System.out.println("    (lm_head tied to embed_tokens: counted once)");
            System.out.println("  dtypes: " + f.dtypeCounts());
        }
        return 0;
    }

    /** "model.layers.3.self_attn.q_proj.weight" → "self_attn.q_proj.weight". */
    static String moduleType(String name) {
        if (name.startsWith("model.layers.")) {
            String rest = name.substring("model.layers.".length());
            return rest.substring(rest.indexOf('.') + 1);
        }
        return name.startsWith("model.") ? name.substring("model.".length()) : name;
    }

    static String bytes(long b) {
        if (b >= 1L << 30) return String.format("%.2f GiB", b / (double) (1L << 30));
        if (b >= 1L << 20) return String.format("%.2f MiB", b / (double) (1L << 20));
        if (b >= 1L << 10) return String.format("%.1f KiB", b / 1024.0);
        return b + " B";
    }
}
