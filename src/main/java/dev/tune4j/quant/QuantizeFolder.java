package dev.tune4j.quant;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tune4j.hf.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * Writes a model folder in bitsandbytes' 4-bit layout: decoder projections quantized (NF4/FP4, optional double
 * quantization), embeddings, norms and lm_head as stored; config.json gains quantization_config. Built beside the
 * target, then renamed.
 */
public final class QuantizeFolder {
    private QuantizeFolder() {}

    public record Result(long denseBytes, long quantizedBytes, int tensors) {}

    public static Result run(Path in, Path out, String quantType, int blocksize, boolean doubleQuant, long maxShardBytes) throws IOException {
        Quantizer.checkBlocksize(blocksize);
        try (ModelFolder f = ModelFolder.open(in)) {
            f.validate();
            if (f.bitsandbytes4bit()) throw new HfFormatException(in, "already a 4-bit bitsandbytes checkpoint");
            var blobs = new LinkedHashMap<String, TensorBlob>();
            long dense = 0, packed = 0;
            int n = 0;
            for (String name : f.config().expectedTensors().keySet()) {
                TensorInfo t = f.info(name);
                float[] v = f.floats(name);
                if (ModelFolder.isProjectionWeight(name)) {
                    QuantState s = Quantizer.quantize(v, t.shape(), quantType, blocksize, doubleQuant);
                    blobs.putAll(BnbFormat.blobs(name, s));
                    dense += 4L * v.length;
                    packed += s.bytes();
                    n++;
                } else {
                    DType d = t.dtype() == DType.BF16 || t.dtype() == DType.F16 ? t.dtype() : DType.F32;
                    blobs.put(name, TensorBlob.ofFloats(d, v, t.shape()));
                }
            }
            Path tmp = AtomicFiles.tempDirBeside(out);
            try {
                SafetensorsWriter.writeSharded(tmp, "model", blobs, maxShardBytes);
                var mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
                ObjectNode cfg = (ObjectNode) mapper.readTree(in.resolve("config.json").toFile());
                cfg.set("quantization_config", mapper.valueToTree(BnbFormat.quantizationConfig(quantType, doubleQuant)));
                byte[] json = mapper.writeValueAsBytes(cfg);
                AtomicFiles.write(tmp.resolve("config.json"), o -> o.write(json));
                for (String file : List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"))
                    if (Files.exists(in.resolve(file))) Files.copy(in.resolve(file), tmp.resolve(file), StandardCopyOption.REPLACE_EXISTING);
                AtomicFiles.publishDir(tmp, out);
            } finally {
                AtomicFiles.deleteTree(tmp);
            }
            return new Result(dense, packed, n);
        }
    }
}
