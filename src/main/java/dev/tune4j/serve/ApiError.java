package dev.tune4j.serve;

/**
 * A request the server answers with an error: the HTTP status and OpenAI's error object
 * {@code {"error": {"message", "type", "param", "code"}}} (param names the request field at fault, or is null).
 */
public final class ApiError extends RuntimeException {
    final int status;
    final String type, param, code;

    ApiError(int status, String type, String param, String code, String message) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400: a field that is missing, of the wrong type or out of range (the message names it). */
    static ApiError invalid(String param, String message) {
        return new ApiError(400, "invalid_request_error", param, null, message);
    }

    static ApiError notFound(String param, String code, String message) {
        return new ApiError(404, "NotFoundError", param, code, message);
    }

    static ApiError modelNotFound(String model) {
        return new ApiError(404, "NotFoundError", "model", "model_not_found", "The model `" + model + "` does not exist.");
    }
}
