CREATE TABLE subscribers (
    line_hash     text PRIMARY KEY,
    msisdn        text NOT NULL UNIQUE,
    home_province text NOT NULL,
    opened_at     date NOT NULL,
    enterprise    text NOT NULL DEFAULT '',
    language      text NOT NULL
);

-- Every decision taken, with the model version that took it (for calibration and audit).
CREATE TABLE decisions (
    id            bigserial PRIMARY KEY,
    line_hash     text NOT NULL,
    risk_level    text NOT NULL,
    action        text NOT NULL,
    score         double precision NOT NULL,
    reasons       jsonb NOT NULL,
    model_version text NOT NULL,
    event_time    timestamptz NOT NULL,
    case_id       text NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_line ON decisions (line_hash, id);

-- Case counter per line: case ids are case-<line hash>-<n>.
CREATE TABLE cases (
    line_hash text PRIMARY KEY,
    last_seq  integer NOT NULL
);

CREATE TABLE outcomes (
    line_hash  text NOT NULL,
    case_id    text NOT NULL,
    outcome    smallint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (line_hash, case_id)
);

CREATE TABLE ingested_batches (
    request_id  text PRIMARY KEY,
    cdrs        integer NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
