CREATE TABLE verifications (
    verification_id uuid PRIMARY KEY,
    case_id         text NOT NULL,
    line_hash       text NOT NULL,
    route           smallint NOT NULL,
    result          smallint NOT NULL,
    failures        text[] NOT NULL,
    policy_version  text NOT NULL,
    caller_province text NOT NULL,
    hall_id         text NOT NULL DEFAULT '',
    agent_id        text NOT NULL DEFAULT '',
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verifications_line ON verifications (line_hash, decided_at);
