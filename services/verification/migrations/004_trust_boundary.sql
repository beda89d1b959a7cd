-- Failed checks count per line for the route they were made on (a remote failure never locks the hall), and
-- per calling principal.
ALTER TABLE failed_attempts ADD COLUMN route_class text NOT NULL DEFAULT 'remote';
DROP INDEX failed_attempts_line;
CREATE INDEX failed_attempts_line ON failed_attempts (line_hash, route_class, at);

-- Four eyes on terminations: the first approver waits for a second, different reviewer (status 6).
ALTER TABLE reviews ADD COLUMN first_approved_by text NOT NULL DEFAULT '';
DROP INDEX reviews_waiting;
DROP INDEX reviews_one_waiting_per_case;
CREATE INDEX reviews_waiting ON reviews (escalated DESC, due_at) WHERE status IN (1, 2, 3, 6);
CREATE UNIQUE INDEX reviews_one_waiting_per_case ON reviews (case_id) WHERE status IN (1, 2, 3, 6);

-- Orders from the police and the regulator, with the principal that submitted them.
CREATE TABLE authority_orders (
    request_id text PRIMARY KEY,
    case_id    text NOT NULL,
    authority  text NOT NULL,
    order_kind text NOT NULL,
    order_ref  text NOT NULL,
    note       text NOT NULL DEFAULT '',
    principal  text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX authority_orders_case ON authority_orders (case_id);

-- Holder lookups, limited per line and per principal (guessing a holder reference is refused, not answered).
CREATE TABLE holder_lookups (
    line_hash text NOT NULL,
    principal text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX holder_lookups_line ON holder_lookups (line_hash, at);
CREATE INDEX holder_lookups_principal ON holder_lookups (principal, at);
