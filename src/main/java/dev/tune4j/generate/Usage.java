package dev.tune4j.generate;

/** Token counts of one request, as OpenAI reports them. */
public record Usage(int promptTokens, int completionTokens) {}
