-- Every opening of a review's sealed evidence: which review, by which reviewer, when (no contents).
CREATE TABLE evidence_views (
    review_id uuid NOT NULL,
    principal text NOT NULL,
    viewed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_views_review ON evidence_views (review_id, viewed_at);
