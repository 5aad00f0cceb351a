package dev.tune4j.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.util.ArrayList;
import java.util.List;

/**
 * A JSON request body read field by field: each accessor checks the type and range of one field and throws a 400
 * {@link ApiError} naming it, so a client learns which field to fix (the OpenAI SDK shows {@code param}). Absent and
 * null fields take their default, as OpenAI's API does.
 */
final class Body {
    /** Tight parser limits: a hostile body must not cost deep recursion or megabyte numbers. */
    static final ObjectMapper JSON = new ObjectMapper();

    static {
        JSON.getFactory().setStreamReadConstraints(StreamReadConstraints.builder()
                .maxNestingDepth(64).maxNumberLength(64).maxStringLength(4 << 20).build());
    }

    private final JsonNode root;

    private Body(JsonNode root) {
        this.root = root;
    }

    static Body parse(byte[] bytes) {
        JsonNode n;
        try {
            n = JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw ApiError.invalid(null, "the request body is not valid JSON: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw ApiError.invalid(null, "the request body could not be read: " + e.getMessage());
        }
        if (n == null || !n.isObject()) throw ApiError.invalid(null, "the request body must be a JSON object, found " + (n == null ? "nothing" : n.getNodeType()));
        return new Body(n);
    }

    JsonNode get(String field) {
        JsonNode v = root.get(field);
        return v == null || v.isNull() ? null : v;
    }

    String str(String field, String dflt) {
        JsonNode v = get(field);
        if (v == null) return dflt;
        if (!v.isTextual()) throw wrongType(field, "a string", v);
        return v.asText();
    }

    boolean bool(String field, boolean dflt) {
        JsonNode v = get(field);
        if (v == null) return dflt;
        if (!v.isBoolean()) throw wrongType(field, "true or false", v);
        return v.booleanValue();
    }

    /** An integer in [lo, hi], or dflt when absent. */
    Integer integer(String field, long lo, long hi, Integer dflt) {
        JsonNode v = get(field);
        if (v == null) return dflt;
        if (!v.isIntegralNumber() && !(v.isNumber() && v.asDouble() == Math.rint(v.asDouble()))) throw wrongType(field, "an integer", v);
        if (!v.canConvertToLong() || v.asLong() < lo || v.asLong() > hi)
            throw ApiError.invalid(field, field + ": expected an integer in [" + lo + ", " + hi + "], found " + v);
        return (int) v.asLong();
    }

    Long longValue(String field) {
        JsonNode v = get(field);
        if (v == null) return null;
        if (!v.isIntegralNumber() || !v.canConvertToLong()) throw wrongType(field, "a 64-bit integer", v);
        return v.asLong();
    }

    /** A finite number in [lo, hi] (loOpen excludes lo), or dflt. */
    double number(String field, double lo, boolean loOpen, double hi, double dflt) {
        JsonNode v = get(field);
        if (v == null) return dflt;
        if (!v.isNumber()) throw wrongType(field, "a number", v);
        double d = v.asDouble();
        if (!(loOpen ? d > lo : d >= lo) || !(d <= hi))
            throw ApiError.invalid(field, field + ": expected a number in " + (loOpen ? "(" : "[") + lo + ", " + hi + "], found " + v);
        return d;
    }

    /** OpenAI's "string or array of strings" (stop), at most max entries of at most maxLength characters. */
    List<String> strings(String field, int max, int maxLength) {
        JsonNode v = get(field);
        var out = new ArrayList<String>();
        if (v == null) return out;
        if (v.isTextual()) out.add(v.asText());
        else if (v.isArray()) {
            for (JsonNode x : v) {
                if (!x.isTextual()) throw wrongType(field + "[" + out.size() + "]", "a string", x);
                out.add(x.asText());
            }
        } else throw wrongType(field, "a string or an array of strings", v);
        if (out.size() > max) throw ApiError.invalid(field, field + ": expected at most " + max + " entries, found " + out.size());
        for (String s : out)
            if (s.isEmpty() || s.length() > maxLength)
                throw ApiError.invalid(field, field + ": expected strings of 1 to " + maxLength + " characters, found one of " + s.length());
        return out;
    }

    /** An array of integers in [lo, hi) (prompt token ids, stop_token_ids), at most max of them. */
    static long[] ids(String field, JsonNode v, long lo, long hi, int max) {
        if (!v.isArray()) throw wrongType(field, "an array of integers", v);
        if (v.size() > max) throw ApiError.invalid(field, field + ": expected at most " + max + " token ids, found " + v.size());
        long[] ids = new long[v.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode x = v.get(i);
            if (!x.isIntegralNumber()) throw wrongType(field + "[" + i + "]", "an integer", x);
            if (!x.canConvertToLong() || x.asLong() < lo || x.asLong() >= hi)
                throw ApiError.invalid(field, field + "[" + i + "]: expected a token id in [" + lo + ", " + hi + "), found " + x);
            ids[i] = x.asLong();
        }
        return ids;
    }

    /** Refuses a field we do not implement unless it has its default value (silently ignoring it would change the answer). */
    void unsupported(String field, JsonNode... defaults) {
        JsonNode v = get(field);
        if (v == null) return;
        for (JsonNode d : defaults) if (d.equals(v)) return;
        throw ApiError.invalid(field, field + ": not supported by this server, found " + clip(v.toString()));
    }

    static ApiError wrongType(String field, String expected, JsonNode found) {
        return ApiError.invalid(field.replaceAll("\\[.*", ""), field + ": expected " + expected + ", found " + clip(found.toString()));
    }

    /** Values echoed in messages are cut short: a hostile megabyte string is not sent back. */
    static String clip(String s) {
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }
}
