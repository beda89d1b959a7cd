"""Lines are split into a fixed number of partitions by their line hash; partitions are shared out among the
scoring shards. A partition's windows, checkpoint and journal move with it, so changing the number of shards
moves partitions and loses nothing."""

from __future__ import annotations

from dataclasses import dataclass

PARTITIONS = 64


def partition_of(line_hash: str) -> int:
    """The partition of a line: its hash's first 32 bits, modulo PARTITIONS (the same in SQL, see SQL_PARTITION)."""
    return int(line_hash[:8], 16) % PARTITIONS


# partition_of in PostgreSQL, for a column named line_hash.
SQL_PARTITION = "(('x' || substr(line_hash, 1, 8))::bit(32)::bigint % 64)"


@dataclass(frozen=True)
class ShardMap:
    """Which shard owns which partition: partition p belongs to shard p mod shards."""

    shards: int = 1
    shard: int = 0  # this process's index

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= PARTITIONS or not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard} of {self.shards}: need 0 <= shard < shards <= {PARTITIONS}")

    def owner(self, partition: int) -> int:
        return partition % self.shards

    @property
    def owned(self) -> list[int]:
        return [p for p in range(PARTITIONS) if self.owner(p) == self.shard]

    @property
    def mask(self) -> int:
        """The owned partitions as a 64-bit mask (bit p), signed as PostgreSQL's bigint."""
        bits = sum(1 << p for p in self.owned)
        return bits - (1 << 64) if bits >= 1 << 63 else bits
