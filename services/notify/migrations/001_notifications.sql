CREATE TABLE notifications (
    notification_id   uuid PRIMARY KEY,
    case_id           text NOT NULL,
    line_hash         text NOT NULL,
    msisdn            text NOT NULL,
    home_province     text NOT NULL,
    template          smallint NOT NULL,
    language          text NOT NULL,
    body              text NOT NULL,
    status            smallint NOT NULL,
    delivered_channel smallint NOT NULL DEFAULT 0,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_pending ON notifications (created_at) WHERE status = 1;

-- Every attempt on every channel, and what became of it. Receipts may arrive days later.
CREATE TABLE attempts (
    notification_id uuid NOT NULL REFERENCES notifications (notification_id),
    seq             integer NOT NULL,
    channel         smallint NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    outcome         text NOT NULL,
    detail          text NOT NULL DEFAULT '',
    smsc_message_id text,
    PRIMARY KEY (notification_id, seq)
);
CREATE UNIQUE INDEX attempts_smsc_message ON attempts (smsc_message_id) WHERE smsc_message_id IS NOT NULL;

-- Receipts as they arrive, matched to attempts whichever of the two is recorded first.
CREATE TABLE receipts (
    smsc_message_id text PRIMARY KEY,
    stat            text NOT NULL,
    err             text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
