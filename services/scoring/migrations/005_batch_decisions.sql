-- A repeated batch answers with the decisions it took the first time, so a caller whose stream
-- broke after the batch was committed still learns them.
ALTER TABLE decisions ADD COLUMN batch_id text;
ALTER TABLE decisions ADD COLUMN masked_msisdn text NOT NULL DEFAULT '';
CREATE INDEX decisions_batch ON decisions (batch_id, id) WHERE batch_id IS NOT NULL;
