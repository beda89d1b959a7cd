-- Decisions are the outbox of case openings: written with the ingested batch, opened by the case opener.
ALTER TABLE decisions
    ADD COLUMN reason_texts jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN trace_id     text NOT NULL DEFAULT '',
    ADD COLUMN join_case    boolean NOT NULL DEFAULT false,
    ADD COLUMN opened_at    timestamptz;
UPDATE decisions SET opened_at = decided_at;
CREATE INDEX decisions_pending ON decisions (id) WHERE opened_at IS NULL;

ALTER TABLE cases ADD COLUMN open boolean NOT NULL DEFAULT false;

-- Window snapshots: a restarted scoring process resumes every line where it was.
CREATE TABLE line_windows (
    line_hash  text PRIMARY KEY,
    state      jsonb NOT NULL,
    event_time timestamptz NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);

-- The anti-fraud platform's feeds.
CREATE TABLE cells (
    cell_id  text PRIMARY KEY,
    province text NOT NULL,
    risk     smallint NOT NULL
);
CREATE TABLE hot_numbers (
    number    text PRIMARY KEY,
    listed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE reports (
    id         bigserial PRIMARY KEY,
    line_hash  text NOT NULL,
    source     smallint NOT NULL,
    at         timestamptz NOT NULL,
    request_id text NOT NULL UNIQUE
);

-- Labels kept for calibration: what the model said and what the case found.
ALTER TABLE outcomes
    ADD COLUMN model_version text NOT NULL DEFAULT '',
    ADD COLUMN reason_codes  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN cleared_codes jsonb NOT NULL DEFAULT '[]';
