-- Delivery over a ladder of channels with retries by error class (delivery policy).
ALTER TABLE notifications
    ADD COLUMN policy_version text NOT NULL DEFAULT '',
    ADD COLUMN location       text NOT NULL DEFAULT '',
    ADD COLUMN country        text NOT NULL DEFAULT '',
    -- When the dispatcher should look at it next; NULL while it waits for an event (a receipt).
    ADD COLUMN due_at         timestamptz DEFAULT now(),
    ADD COLUMN give_up_at     timestamptz,
    -- Which dispatcher is working on it, until when (a crashed one's lease simply runs out).
    ADD COLUMN lease_owner    text,
    ADD COLUMN lease_until    timestamptz;
UPDATE notifications SET due_at = NULL WHERE status <> 1;
CREATE INDEX notifications_due ON notifications (due_at) WHERE status = 1;
CREATE INDEX notifications_msisdn_pending ON notifications (msisdn) WHERE status = 1;

-- What is known of each channel of a notification: how often tried, and when it may be tried again.
CREATE TABLE channel_tracks (
    notification_id uuid NOT NULL REFERENCES notifications (notification_id),
    channel         smallint NOT NULL,
    tries           integer NOT NULL DEFAULT 0,
    state           text NOT NULL,  -- in_flight | failed | done | delivered
    error_class     smallint NOT NULL DEFAULT 0,
    retry_at        timestamptz,
    sent_at         timestamptz,
    last_seq        integer NOT NULL DEFAULT 0,  -- its latest attempt: an older attempt's receipt cannot undo it
    PRIMARY KEY (notification_id, channel)
);

ALTER TABLE attempts
    ADD COLUMN error_class smallint NOT NULL DEFAULT 0,
    ADD COLUMN location    text NOT NULL DEFAULT '';
