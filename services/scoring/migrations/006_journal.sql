-- The write-ahead journal of everything that changes a line's windows: CDR batches, reports and outcome labels,
-- each written in the transaction that acknowledges it. A shard rebuilds its partitions from their last window
-- checkpoint plus the journal after it, so every acknowledged CDR counts exactly once across a crash.
CREATE TABLE journal (
    id         bigserial PRIMARY KEY,
    kind       smallint NOT NULL,  -- 1 CDR batch, 2 report, 3 outcome label
    batch_id   text NOT NULL,
    partitions bigint NOT NULL,    -- the writing shard's partitions (bit p), to skip other shards' entries
    body       bytea NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

-- A partition's windows as saved include every journal entry up to journal_id, and none after it.
CREATE TABLE checkpoints (
    partition  smallint PRIMARY KEY,
    journal_id bigint NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE line_windows ADD COLUMN partition smallint;
UPDATE line_windows SET partition = (('x' || substr(line_hash, 1, 8))::bit(32)::bigint % 64);
ALTER TABLE line_windows ALTER COLUMN partition SET NOT NULL;
CREATE INDEX line_windows_partition ON line_windows (partition);

-- A decision is keyed by what caused it (a CDR of a batch, a report), so replaying the journal never takes it
-- twice.
ALTER TABLE decisions ADD COLUMN cause text;
CREATE UNIQUE INDEX decisions_cause ON decisions (cause) WHERE cause IS NOT NULL;
