-- Who reported a line and who labelled an outcome: the calling principal from its certificate (role/id).
ALTER TABLE reports ADD COLUMN principal text NOT NULL DEFAULT '';
ALTER TABLE outcomes ADD COLUMN recorded_by text NOT NULL DEFAULT '';
