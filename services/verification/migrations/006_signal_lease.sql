-- The relay claims signals with a lease instead of holding their row locks across Temporal calls.
ALTER TABLE case_signals ADD COLUMN lease_until timestamptz;
