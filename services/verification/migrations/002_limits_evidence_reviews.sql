-- Who asked, whether a reviewer must approve, and why the route was stricter than the risk level.
ALTER TABLE verifications
    ADD COLUMN caller_id         text NOT NULL DEFAULT '',
    ADD COLUMN review_id         uuid,
    ADD COLUMN escalated_because text NOT NULL DEFAULT '';

-- Failed checks, counted per line and per caller for lockouts.
CREATE TABLE failed_attempts (
    line_hash text NOT NULL,
    caller    text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failed_attempts_line ON failed_attempts (line_hash, at);
CREATE INDEX failed_attempts_caller ON failed_attempts (caller, at);

-- Evidence and explanations, encrypted (AES-256-GCM, bound to their owner), deleted when retention ends.
CREATE TABLE evidence (
    owner_id   uuid NOT NULL,  -- a verification or a review
    kind       text NOT NULL,  -- liveness_token, province_code_token, extra_evidence, explanation, ...
    key_id     text NOT NULL,
    sealed     bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX evidence_owner ON evidence (owner_id);
CREATE INDEX evidence_expiry ON evidence (expires_at);

-- The manual review queue.
CREATE TABLE reviews (
    review_id      uuid PRIMARY KEY,
    kind           smallint NOT NULL,
    status         smallint NOT NULL,
    case_id        text NOT NULL,
    line_hash      text NOT NULL,
    masked_msisdn  text NOT NULL,
    home_province  text NOT NULL,
    evidence_count integer NOT NULL DEFAULT 0,
    claimed_by     text NOT NULL DEFAULT '',
    due_at         timestamptz NOT NULL,
    escalated      boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decision       smallint NOT NULL DEFAULT 0,
    decision_note  text NOT NULL DEFAULT '',
    more_requested text NOT NULL DEFAULT '',
    decided_at     timestamptz
);
CREATE INDEX reviews_waiting ON reviews (escalated DESC, due_at) WHERE status IN (1, 2, 3);
CREATE UNIQUE INDEX reviews_one_waiting_per_case ON reviews (case_id) WHERE status IN (1, 2, 3);
