package dev.tune4j.train;

import org.junit.jupiter.api.Test;

import java.util.*;
import java.util.stream.IntStream;

import static org.assertj.core.api.Assertions.assertThat;

/** Data parallel's batches: the ranks' parts of each batch are the batch one process cuts at the global batch size. */
class ShardTest {
    @Test
    void theRanksPartsOfEachBatchAreOneProcesssBatchAtTheGlobalSize() {
        int n = 23, b = 3, world = 2;
        var one = new EpochOrder(n, b * world, 42);
        var ranks = IntStream.range(0, world).mapToObj(r -> new EpochOrder(n, b, 42, new Shard(r, world))).toList();
        assertThat(ranks.getFirst().perEpoch()).isEqualTo(one.perEpoch()).isEqualTo(4);
        for (long k = 0; k < 3L * one.perEpoch(); k++) { // three epochs, each shuffled anew
            var joined = new ArrayList<Integer>();
            double shares = 0;
            for (var r : ranks) {
                for (int i : r.at(k)) joined.add(i);
                shares += r.share(k);
                assertThat(r.globalAt(k)).containsExactly(one.at(k));
            }
            assertThat(joined).containsExactlyElementsOf(Arrays.stream(one.at(k)).boxed().toList());
            assertThat(shares).isCloseTo(1.0, org.assertj.core.data.Offset.offset(1e-12));
        }
        // the epoch's last batch holds 23 − 3·6 = 5 items: rank 0 gets 3, rank 1 gets 2 (shares 3/5 and 2/5)
        assertThat(ranks.get(0).at(3)).hasSize(3);
        assertThat(ranks.get(1).at(3)).hasSize(2);
        assertThat(ranks.get(1).share(3)).isEqualTo(0.4);
        // evaluation: every item once over the ranks, in file order
        var seen = new ArrayList<Integer>();
        for (int i = 0; i < one.perEpoch(); i++) for (var r : ranks) for (int x : r.inOrder(i)) seen.add(x);
        assertThat(seen).containsExactlyElementsOf(IntStream.range(0, n).boxed().toList());
    }

    @Test
    void aRankMayGetNoItemsOfAShortBatch() {
        var last = new EpochOrder(4, 2, 1, new Shard(2, 3)); // 4 items, global batch 6: rank 2 gets none
        assertThat(last.at(0)).isEmpty();
        assertThat(last.share(0)).isZero();
        assertThat(last.inOrder(0)).isEmpty();
        assertThat(new EpochOrder(4, 2, 1, new Shard(1, 3)).inOrder(0)).containsExactly(2, 3);
    }

    /** Evaluation cuts its batches from the rows shortest first (little padding), still every row once over the ranks. */
    @Test
    void evaluationBatchesGoShortestFirst() {
        int[] lengths = {9, 3, 7, 2, 8, 5, 4};
        var examples = Arrays.stream(lengths).mapToObj(n -> new dev.tune4j.data.Example(new long[n], new long[n])).toList();
        var one = new Batches(examples, 2, 16, false, 0, 42);
        var seen = new ArrayList<Long>();
        var padded = new ArrayList<Integer>();
        for (int i = 0; i < one.inOrderCount(); i++) {
            var mb = one.inOrder(i, dev.tune4j.tensor.Compute.cpu());
            seen.add(mb.tokens());
            padded.add(mb.length());
        }
        // batches of (2,3), (4,5), (7,8), (9): each padded to its longest row only
        assertThat(seen).containsExactly(5L, 9L, 15L, 9L);
        assertThat(padded).containsExactly(3, 5, 8, 9);
        long total = 0;
        for (int r = 0; r < 2; r++) {
            var rank = new Batches(examples, 1, 16, false, 0, 42, new Shard(r, 2));
            for (int i = 0; i < rank.inOrderCount(); i++) total += rank.inOrder(i, dev.tune4j.tensor.Compute.cpu()).tokens();
        }
        assertThat(total).as("every row once over two ranks").isEqualTo(Arrays.stream(lengths).sum());
    }
}
