-- What the case must hear, written in the transaction of the change that causes it (the outbox); the relay
-- signals the case after the commit and marks the row sent.
CREATE TABLE case_signals (
    id         bigserial PRIMARY KEY,
    case_id    text NOT NULL,
    signal     text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX case_signals_pending ON case_signals (id) WHERE sent_at IS NULL;
