package dev.tune4j.dist;

import dev.tune4j.hf.UserError;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** torchrun's environment read and checked by name, ZeRO's partition, the launcher's and the collectives' messages. */
class GroupTest {
    @Test
    void theEnvironmentOfTorchrunSlurmOrPyTorchJobIsReadAndCheckedByName() {
        assertThat(Group.Topology.fromEnv(Map.of())).isNull();
        assertThatThrownBy(() -> Group.Topology.fromEnv(Map.of("RANK", "1"))).isInstanceOf(UserError.class).hasMessageStartingWith("RANK is set (1) but WORLD_SIZE is not");
        var t = Group.Topology.fromEnv(Map.of("WORLD_SIZE", "4", "RANK", "3", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "2", "NODE_RANK", "1",
                "MASTER_ADDR", "node-0", "MASTER_PORT", "29500"));
        assertThat(t).isEqualTo(new Group.Topology(3, 4, 1, 2, 1, "node-0", 29500));
        // LOCAL_RANK, LOCAL_WORLD_SIZE and NODE_RANK are optional (a PyTorchJob with one process per pod sets none of them)
        assertThat(Group.Topology.fromEnv(Map.of("WORLD_SIZE", "2", "RANK", "1", "MASTER_ADDR", "h", "MASTER_PORT", "1")).localRank()).isZero();
        assertThatThrownBy(() -> Group.Topology.fromEnv(Map.of("WORLD_SIZE", "two"))).isInstanceOf(UserError.class)
                .hasMessage("WORLD_SIZE: expected an integer from 1 to 1048576, found 'two'");
        assertThatThrownBy(() -> Group.Topology.fromEnv(Map.of("WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1"))).isInstanceOf(UserError.class)
                .hasMessageStartingWith("RANK: not set");
        assertThatThrownBy(() -> Group.Topology.fromEnv(Map.of("WORLD_SIZE", "2", "RANK", "0", "MASTER_PORT", "1"))).isInstanceOf(UserError.class)
                .hasMessageStartingWith("MASTER_ADDR: not set");
        assertThatThrownBy(() -> Group.Topology.fromEnv(Map.of("WORLD_SIZE", "2", "RANK", "0", "MASTER_ADDR", "h", "MASTER_PORT", "70000"))).isInstanceOf(UserError.class)
                .hasMessage("MASTER_PORT: expected an integer from 1 to 65535, found '70000'");
        assertThat(Group.join(Map.of("WORLD_SIZE", "1"), java.time.Duration.ofSeconds(1), false)).isSameAs(Group.SINGLE);
    }

    @Test
    void zeroPartitionsTheParametersIntoContiguousRunsBalancedBySize() {
        long[] sizes = {100, 10, 10, 500, 10, 10, 300, 60};
        int[] owner = Group.owners(sizes, 2);
        assertThat(owner).containsExactly(0, 0, 0, 0, 1, 1, 1, 1);
        int[] four = Group.owners(sizes, 4);
        for (int i = 1; i < four.length; i++) assertThat(four[i]).isGreaterThanOrEqualTo(four[i - 1]); // contiguous runs
        assertThat(four[0]).isZero();
        assertThat(four[four.length - 1]).isEqualTo(3);
        assertThat(Group.owners(new long[]{1, 1, 1, 1}, 4)).containsExactly(0, 1, 2, 3);
    }

    @Test
    void gradientsTravelInFewBucketsOfOneDtype() {
        try (var scope = new org.bytedeco.javacpp.PointerScope()) {
            dev.tune4j.tensor.Compute.cpu();
            var small = new java.util.ArrayList<org.bytedeco.pytorch.Tensor>();
            for (int i = 0; i < 56; i++) small.add(org.bytedeco.pytorch.global.torch.zeros(16, 64)); // a LoRA adapter's A and B
            assertThat(Group.buckets(small, Group.BUCKET_BYTES)).hasSize(1);
            assertThat(Group.buckets(small, 16 * 64 * 4 * 10)).hasSize(6).allSatisfy(b -> assertThat(b.size()).isLessThanOrEqualTo(10));
            small.add(org.bytedeco.pytorch.global.torch.zeros(8).to(org.bytedeco.pytorch.global.torch.ScalarType.Long));
            assertThat(Group.buckets(small, Group.BUCKET_BYTES)).hasSize(2); // another dtype starts a bucket
        }
    }

    @Test
    void failuresAreDescribedInWords() {
        assertThat(Launcher.describe(137)).isEqualTo("was killed by SIGKILL (kill -9, or the kernel's out-of-memory killer)");
        assertThat(Launcher.describe(143)).isEqualTo("was killed by SIGTERM");
        assertThat(Launcher.describe(2)).isEqualTo("exited with code 2");
        assertThat(Group.clean("[/home/runner/work/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:547] Connection closed by peer [127.0.0.1]:57746"))
                .isEqualTo("Connection closed by peer [127.0.0.1]:57746");
    }
}
