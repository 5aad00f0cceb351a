package dev.tune4j.generate;

/** Why a request ended: STOP (end-of-sequence or a stop string; OpenAI "stop"), LENGTH (max tokens; "length"), CANCELLED, ERROR. */
public enum FinishReason {
    STOP, LENGTH, CANCELLED, ERROR;

    /** OpenAI's finish_reason. */
    public String openAi() {
        return switch (this) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case CANCELLED -> "abort";
            case ERROR -> "error";
        };
    }
}
