package dev.tune4j.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tune4j.hf.*;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;

/**
 * bitsandbytes' 4-bit checkpoint layout, as transformers saves a model loaded with BitsAndBytesConfig(load_in_4bit=True):
 * next to each quantized {@code <module>.weight} (packed uint8 [(n+1)/2, 1]) sit {@code .absmax}, {@code .quant_map},
 * {@code .nested_absmax}, {@code .nested_quant_map} and {@code .quant_state.bitsandbytes__nf4|fp4} (the UTF-8 JSON of
 * quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype, nested_offset); config.json carries
 * {@code quantization_config}.
 */
public final class BnbFormat {
    private BnbFormat() {}

    /** The tensors that store one quantized weight, keyed as bitsandbytes keys them. */
    public static Map<String, TensorBlob> blobs(String weightName, QuantState s) {
        var m = new LinkedHashMap<String, TensorBlob>();
        m.put(weightName, new TensorBlob(DType.U8, new long[]{s.packed().length, 1}, s.packed()));
        float[] table = s.quantType().equals("nf4") ? Codebooks.NF4 : Codebooks.FP4;
        m.put(weightName + ".quant_map", TensorBlob.ofFloats(table, 16));
        if (s.nested()) {
            m.put(weightName + ".absmax", new TensorBlob(DType.U8, new long[]{s.nestedCodes().length}, s.nestedCodes()));
            m.put(weightName + ".nested_absmax", TensorBlob.ofFloats(s.nestedAbsmax(), s.nestedAbsmax().length));
            m.put(weightName + ".nested_quant_map", TensorBlob.ofFloats(Codebooks.dynamicMap(true), 256));
        } else m.put(weightName + ".absmax", TensorBlob.ofFloats(s.absmax(), s.absmax().length));
        byte[] json = stateJson(s).getBytes(StandardCharsets.UTF_8);
        m.put(weightName + ".quant_state.bitsandbytes__" + s.quantType(), new TensorBlob(DType.U8, new long[]{json.length}, json));
        return m;
    }

    /** json.dumps of the non-tensor fields, in bitsandbytes' insertion order and with Python's default separators. */
    static String stateJson(QuantState s) {
        var sb = new StringBuilder("{\"quant_type\": \"").append(s.quantType()).append("\", \"blocksize\": ").append(s.blocksize())
                .append(", \"dtype\": \"float32\", \"shape\": [");
        for (int i = 0; i < s.shape().length; i++) sb.append(i == 0 ? "" : ", ").append(s.shape()[i]);
        sb.append("]");
        if (s.nested()) sb.append(", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ").append(PythonJson.floatRepr(s.offset()));
        return sb.append("}").toString();
    }

    /** config.json's quantization_config as transformers writes it for a 4-bit bitsandbytes model. */
    public static Map<String, Object> quantizationConfig(String quantType, boolean doubleQuant) {
        var q = new LinkedHashMap<String, Object>();
        q.put("_load_in_4bit", true);
        q.put("_load_in_8bit", false);
        q.put("bnb_4bit_compute_dtype", "float32");
        q.put("bnb_4bit_quant_storage", "uint8");
        q.put("bnb_4bit_quant_type", quantType);
        q.put("bnb_4bit_use_double_quant", doubleQuant);
        q.put("llm_int8_enable_fp32_cpu_offload", false);
        q.put("llm_int8_has_fp16_weight", false);
        q.put("llm_int8_skip_modules", null);
        q.put("llm_int8_threshold", 6.0);
        q.put("load_in_4bit", true);
        q.put("load_in_8bit", false);
        q.put("quant_method", "bitsandbytes");
        return q;
    }

    /** Reads one quantized weight back; every inconsistency is an error naming the tensor. */
    public static QuantState read(Safetensors st, String weightName) {
        Path f = st.file();
        String stateKey = null;
        for (String t : List.of("nf4", "fp4")) if (st.contains(weightName + ".quant_state.bitsandbytes__" + t)) stateKey = weightName + ".quant_state.bitsandbytes__" + t;
        if (stateKey == null) throw new HfFormatException(f, "tensor '" + weightName + "': no quant_state.bitsandbytes__nf4/fp4 entry");
        JsonNode js;
        try {
            byte[] raw = st.bytes(stateKey).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            js = new ObjectMapper().readTree(new String(raw, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new HfFormatException(f, "tensor '" + stateKey + "': quant_state is not valid JSON");
        }
        String type = js.path("quant_type").asText();
        int bs = js.path("blocksize").asInt(-1);
        if (!type.equals("nf4") && !type.equals("fp4")) throw new HfFormatException(f, "tensor '" + stateKey + "': quant_type '" + type + "', expected nf4 or fp4");
        try {
            Quantizer.checkBlocksize(bs);
        } catch (IllegalArgumentException e) {
            throw new HfFormatException(f, "tensor '" + stateKey + "': " + e.getMessage());
        }
        if (!js.path("shape").isArray() || js.path("shape").size() != 2) throw new HfFormatException(f, "tensor '" + stateKey + "': shape must be [out, in]");
        long[] shape = {js.path("shape").get(0).asLong(), js.path("shape").get(1).asLong()};
        long n = shape[0] * shape[1], blocks = (n + bs - 1) / bs;
        TensorInfo w = st.info(weightName);
        if (w.dtype() != DType.U8 || w.numel() != (n + 1) / 2)
            throw new HfFormatException(f, "tensor '" + weightName + "': expected " + (n + 1) / 2 + " packed uint8 bytes for shape " + Arrays.toString(shape) + ", found " + w);
        byte[] packed = st.bytes(weightName).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        TensorInfo a = st.info(weightName + ".absmax");
        if (a.numel() != blocks) throw new HfFormatException(f, "tensor '" + weightName + ".absmax': expected " + blocks + " values, found " + a.numel());
        boolean nested = js.has("nested_offset");
        if (!nested) return new QuantState(type, bs, shape, packed, st.floats(weightName + ".absmax"), null, null, 0f);
        if (a.dtype() != DType.U8) throw new HfFormatException(f, "tensor '" + weightName + ".absmax': nested absmax must be uint8, found " + a.dtype());
        float[] absmax2 = st.floats(weightName + ".nested_absmax");
        if (absmax2.length != (blocks + QuantState.NESTED_BLOCKSIZE - 1) / QuantState.NESTED_BLOCKSIZE)
            throw new HfFormatException(f, "tensor '" + weightName + ".nested_absmax': expected " + (blocks + 255) / 256 + " values, found " + absmax2.length);
        return new QuantState(type, bs, shape, packed, null, st.bytes(weightName + ".absmax").toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                absmax2, (float) js.path("nested_offset").asDouble());
    }
}
