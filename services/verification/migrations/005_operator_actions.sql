-- What operators did with cases that waited for them (needs_attention), and why.
CREATE TABLE operator_actions (
    request_id text PRIMARY KEY,
    case_id    text NOT NULL,
    step       text NOT NULL,
    choice     text NOT NULL,
    note       text NOT NULL,
    principal  text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_actions_case ON operator_actions (case_id, at);
