-- Who made each change: the calling principal from its certificate (role/id), beside the actor on whose
-- authority it was made.
ALTER TABLE line_history ADD COLUMN principal text NOT NULL DEFAULT '';
