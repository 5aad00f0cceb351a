package dev.tune4j.cli;

import dev.tune4j.generate.GenerationConfig;
import dev.tune4j.generate.Generator;
import dev.tune4j.hf.Llama2cImport;
import dev.tune4j.hf.ModelFolder;
import dev.tune4j.model.CausalLmLoss;
import dev.tune4j.model.LlamaModel;
import dev.tune4j.tensor.Compute;
import dev.tune4j.tensor.Memory;
import dev.tune4j.tensor.Tensors;
import dev.tune4j.text.Tokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Callable;

/**
 * The whole foundation path on the embedded stories260K (karpathy, MIT): llama2.c import → Hugging Face folder →
 * load with validation → greedy and sampled stories → next-token loss of a story → forward and generation throughput.
 * Needs no network and no ../shared.
 */
@Command(name = "demo", mixinStandardHelpOptions = true, description = "Run the built-in end-to-end demo on the embedded stories260K model.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--out", defaultValue = ".tune4j/demo", description = "work folder (default ${DEFAULT-VALUE})")
    Path out;

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        Files.createDirectories(out);
        Path bin = extract("stories260K.bin"), tok = extract("tok512.bin");
        Path hf = out.resolve("stories260K-hf");
        System.out.println("1. convert llama2.c → Hugging Face folder " + hf);
        Llama2cImport.convert(bin, tok, hf);

        try (ModelFolder f = ModelFolder.open(hf); LlamaModel m = LlamaModel.load(f, Compute.auto()); Tokenizer t = Tokenizer.load(hf)) {
            System.out.printf("2. loaded %s: %,d parameters, %d layers, %s%n", f.config().arch().className, m.parameterCount(), f.config().numLayers(), m.compute.describe());

            System.out.println("3. greedy story from BOS (karpathy's doc: \"Once upon a time, there was a little girl named Lily...\"):");
            long t0 = System.nanoTime();
            var greedy = Generator.generate(m, new long[]{1}, GenerationConfig.greedy(120).withEos(List.of(2)), x -> t.decode(x, true), null);
            double genS = (System.nanoTime() - t0) / 1e9;
            System.out.println("   " + greedy.text().strip());

            var sampling = new GenerationConfig(120, 0.8, 0, 0.9, 1.0, 42, List.of(2), List.of());
            long[] prompt = t.encode("Once upon a time, a little dog", true);
            var sampled = Generator.generate(m, prompt, sampling, null, null);
            long[] all = java.util.stream.LongStream.concat(java.util.Arrays.stream(prompt), java.util.Arrays.stream(sampled.tokens())).toArray();
            System.out.println("4. sampled (temperature 0.8, top-p 0.9, seed 42) from \"Once upon a time, a little dog\":");
            System.out.println("   " + t.decode(all, true).strip());

            String story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
            long[] ids = t.encode(story, true);
            double loss;
            try (PointerScope s = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                var x = m.compute.placeIndex(Tensors.longs(ids, 1, ids.length));
                loss = CausalLmLoss.sum(m.logits(x, null, null), x).mean();
            }
            System.out.printf("5. next-token loss on a %d-token story: %.4f nats/token (perplexity %.2f)%n", ids.length, loss, Math.exp(loss));
            System.out.printf("6. generation: %.0f tokens/s; peak resident memory %.0f MiB; whole demo %.1f s%n",
                    greedy.tokens().length / genS, Memory.mib(Memory.peakResidentBytes()), (System.nanoTime() - start) / 1e9);
            System.out.println("   next: ./tune4j inspect " + hf + "   ./tune4j generate --model " + hf + " --prompt \"Once upon a time\"");
        }
        return 0;
    }

    private Path extract(String name) throws Exception {
        Path p = out.resolve(name);
        try (InputStream in = Objects.requireNonNull(DemoCommand.class.getResourceAsStream("/dev/tune4j/demo/" + name), name)) {
            Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
        }
        return p;
    }
}
