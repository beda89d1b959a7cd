-- With several shards a batch is applied in parts, one per owning shard: a part is recorded per partition, so a
-- batch sent again (to any shard, before or after the shards changed) applies only what was not applied yet.
CREATE TABLE ingested_parts (
    request_id  text NOT NULL,
    partition   smallint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, partition)
);
