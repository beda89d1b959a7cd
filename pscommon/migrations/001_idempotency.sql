-- First answer of every mutating RPC, by request_id (AIP-155): a repeat returns it and writes nothing.
CREATE TABLE idempotency (
    request_id   text PRIMARY KEY,
    method       text NOT NULL,
    request_hash bytea NOT NULL,
    response     bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_created_at ON idempotency (created_at);
