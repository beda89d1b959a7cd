CREATE TABLE lines (
    line_hash     text PRIMARY KEY,
    msisdn        text NOT NULL UNIQUE,
    masked_msisdn text NOT NULL,
    home_province text NOT NULL,
    state         smallint NOT NULL,
    barring       jsonb NOT NULL,
    restore_count integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Append-only audit log: every transition with who, for which case and why.
CREATE TABLE line_history (
    seq         bigserial PRIMARY KEY,
    line_hash   text NOT NULL REFERENCES lines (line_hash),
    from_state  smallint NOT NULL,
    to_state    smallint NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    text NOT NULL,
    case_id     text NOT NULL,
    reason      text NOT NULL,
    request_id  text NOT NULL,
    barring     jsonb NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX line_history_line ON line_history (line_hash, seq);
