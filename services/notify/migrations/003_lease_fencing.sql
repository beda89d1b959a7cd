-- The fencing token of the lease: every claim takes the next generation, and a dispatcher writes only under the
-- generation it claimed with, so one whose lease ran out and was taken over cannot overwrite the new holder.
ALTER TABLE notifications ADD COLUMN lease_gen bigint NOT NULL DEFAULT 0;
