package dev.tune4j.train;

import org.junit.jupiter.api.Test;

import java.util.*;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The key table is the one source of truth: every key is accepted by every method and stage it applies to and reaches
 * the resolved configuration with the value given, and is a named error everywhere else (never silently ignored).
 */
class TrainConfigTest {
    static final List<String> METHODS = List.of("lora", "qlora", "full");

    /** A value of the key's kind that differs from its default (so a key that were dropped would show). */
    static String sample(TrainConfig.Key k) {
        return switch (k.name()) {
            case "method", "stage", "model", "data", "out" -> null;
            case "scheduler" -> "cosine";
            case "quant" -> "fp4";
            case "optim" -> "adamw8bit";
            case "compute-dtype" -> "bfloat16";
            case "loss-type" -> "ipo";
            case "prompt-style" -> "alpaca";
            case "format" -> "alpaca";
            case "resume" -> "latest";
            case "target-modules" -> "q_proj,v_proj";
            case "blocksize" -> "128";
            case "zero" -> "2";
            case "max-steps", "epochs", "batch-size" -> "3";
            case "label-smoothing" -> "0.2";
            default -> switch (k.kind()) {
                case BOOL -> String.valueOf(!"true".equals(k.defaultValue()));
                case INT -> "7";
                case NUMBER -> "0.25";
                case PATH -> "/tmp/some-file";
                default -> "x";
            };
        };
    }

    static Map<String, String> required(String method, String stage) {
        return new LinkedHashMap<>(Map.of("model", "/m", "data", "/d.json", "out", "/o", "method", method, "stage", stage));
    }

    @Test
    void everyKeyReachesTheConfigWhereItAppliesAndIsANamedErrorElsewhere() {
        int accepted = 0, refused = 0;
        for (String method : METHODS)
            for (String stage : TrainConfig.STAGES)
                for (TrainConfig.Key k : TrainConfig.TABLE) {
                    String value = sample(k);
                    if (value == null) continue;
                    var m = required(method, stage);
                    m.put(k.name(), value);
                    boolean applies = k.appliesTo().isEmpty() || k.appliesTo().contains(method) || k.appliesTo().contains(stage);
                    if (applies) {
                        var c = TrainConfig.fromMap(m, "test");
                        Object got = c.toMap().get(k.name());
                        if (isNumber(value)) assertThat(Double.parseDouble(String.valueOf(got))).as(k.name() + " for " + method + "/" + stage).isEqualTo(Double.parseDouble(value));
                        else assertThat(String.valueOf(got)).as(k.name() + " for " + method + "/" + stage).isEqualTo(value);
                        accepted++;
                    } else {
                        assertThatThrownBy(() -> TrainConfig.fromMap(m, "run.yaml")).as(k.name() + " for " + method + "/" + stage)
                                .hasMessageContaining("run.yaml").hasMessageContaining("'" + k.name() + "' applies to").hasMessageContaining(method);
                        refused++;
                    }
                }
        assertThat(accepted).isGreaterThan(500);
        assertThat(refused).isGreaterThan(50);
    }

    static boolean isNumber(String s) {
        try {
            Double.parseDouble(s);
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    @Test
    void defaultsComeFromTheTableAndDependOnMethodAndStage() {
        var lora = TrainConfig.fromMap(required("lora", "sft"), "t");
        assertThat(lora.r()).isEqualTo(16);
        assertThat(lora.lr()).isEqualTo(2e-4);
        assertThat(lora.gradientCheckpointing()).isFalse();
        assertThat(TrainConfig.fromMap(required("qlora", "sft"), "t").gradientCheckpointing()).isTrue();
        var dpo = TrainConfig.fromMap(required("lora", "dpo"), "t");
        assertThat(dpo.lr()).isEqualTo(5e-5);
        assertThat(dpo.beta()).isEqualTo(0.1);
        assertThat(TrainConfig.fromMap(required("lora", "simpo"), "t").beta()).isEqualTo(2.0);
        assertThat(lora.toMap()).doesNotContainKeys("beta", "quant", "loss-type").containsKeys("r", "lora-alpha");
        assertThat(TrainConfig.fromMap(required("full", "dpo"), "t").toMap()).containsKeys("beta", "loss-type").doesNotContainKeys("r");
        for (TrainConfig.Key k : TrainConfig.TABLE) assertThat(k.describe()).as(k.name()).isNotBlank();
    }

    /** Validation's default size follows the run: 64, but at most half of what it trains on and at least 8; a given value wins. */
    @Test
    void aShortRunValidatesOnAtMostHalfOfWhatItTrainsOn() {
        var m = required("lora", "sft");
        m.put("max-steps", "4");
        m.put("batch-size", "4");
        var c = TrainConfig.fromMap(m, "t");
        assertThat(c.maxEvalSamples()).isEqualTo(TrainConfig.AUTO);
        assertThat(c.toMap()).containsEntry("max-eval-samples", "auto");
        assertThat(c.trainedExamples(899, 1)).isEqualTo(16);
        assertThat(c.evalExamples(c.trainedExamples(899, 1))).isEqualTo(8);
        assertThat(c.evalExamples(60)).isEqualTo(30);
        assertThat(c.evalExamples(10_000)).isEqualTo(64);
        assertThat(c.evalExamples(2)).isEqualTo(8);
        m.remove("max-steps");
        m.put("epochs", "2");
        assertThat(TrainConfig.fromMap(m, "t").trainedExamples(50, 1)).isEqualTo(100);
        assertThat(c.trainedExamples(899, 2)).as("two processes, each its batch").isEqualTo(32);
        m.put("max-eval-samples", "auto"); // as run_config.json writes it
        assertThat(TrainConfig.fromMap(m, "t").maxEvalSamples()).isEqualTo(TrainConfig.AUTO);
        m.put("max-eval-samples", " ");
        assertThatThrownBy(() -> TrainConfig.fromMap(m, "run.yaml")).hasMessageContaining("run.yaml: 'max-eval-samples' expects an integer or auto, found nothing");
        m.put("max-eval-samples", "3");
        assertThat(TrainConfig.fromMap(m, "t").evalExamples(10_000)).isEqualTo(3);
        m.put("max-eval-samples", "-1");
        assertThatThrownBy(() -> TrainConfig.fromMap(m, "t")).hasMessageContaining("max-eval-samples must be >= 0 (0: every validation example), found -1");
    }

    @Test
    void badValuesAreNamed() {
        var m = required("lora", "sft");
        m.put("r", "sixteen");
        assertThatThrownBy(() -> TrainConfig.fromMap(m, "run.yaml")).hasMessageContaining("run.yaml: 'r' expects an integer, found 'sixteen'");
        var s = required("lora", "rlhf");
        assertThatThrownBy(() -> TrainConfig.fromMap(s, "t")).hasMessageContaining("stage: expected one of");
        var l = required("lora", "dpo");
        l.put("loss-type", "exo");
        assertThatThrownBy(() -> TrainConfig.fromMap(l, "t")).hasMessageContaining("loss-type: expected sigmoid, ipo, hinge or robust for --stage dpo, found 'exo'");
    }
}
