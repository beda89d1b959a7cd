-- The case opener claims decisions with a lease instead of holding their row locks across Temporal calls.
ALTER TABLE decisions ADD COLUMN lease_until timestamptz;
