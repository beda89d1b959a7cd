-- Which scoring process owns each partition now. A process claims its partitions on start (a new token) before
-- it loads them; every write to a partition's journal or checkpoint checks the token in its transaction, so a
-- process whose partitions were taken over (a shard restarted elsewhere, the shards re-counted) can never write
-- them again: it learns so on its next write and stops.
CREATE TABLE partition_owners (
    partition smallint PRIMARY KEY,
    token     uuid NOT NULL,
    shard     integer NOT NULL,
    shards    integer NOT NULL,
    since     timestamptz NOT NULL DEFAULT now()
);

-- UpdateCells / UpdateNumberFeed on any shard tell every shard to reload the feeds (NOTIFY scoring_feeds).
