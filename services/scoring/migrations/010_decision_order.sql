-- The opener delivers a line's decisions in order: a later one waits until every earlier one has opened or
-- joined its case (a join delivered first would find no case and open another). This index finds the earlier
-- unopened decisions of a line.
CREATE INDEX decisions_unopened_by_line ON decisions (line_hash, id) WHERE opened_at IS NULL;
