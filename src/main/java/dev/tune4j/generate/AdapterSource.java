package dev.tune4j.generate;

import dev.tune4j.model.Linear;
import dev.tune4j.model.LlamaModel;

/** Where the engine gets adapters by name: the caller loads them (serve: its adapter root; eval: a folder). */
public interface AdapterSource {
    /** Loads adapter {@code name} and attaches it to the model's projections under that name; IllegalArgumentException names what is wrong. */
    void attach(LlamaModel model, String name) throws java.io.IOException;

    /** Removes adapter {@code name} from every projection and frees it (evicted from the cache, or unloaded). */
    default void detach(LlamaModel model, String name) {
        for (Linear l : model.linears().values())
            if (l.detach(name) instanceof AutoCloseable c) try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing adapter '" + name + "'", e);
            }
    }
}
