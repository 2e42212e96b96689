-- HR's decisions on candidates (Invite, Reject, Hold). Every decision is a row: the newest is
-- the one in force, the older ones are its history. `sent_at` is when the candidate's message
-- went out (NULL: not delivered, e.g. the candidate blocked the bot).
CREATE TABLE decisions (
    id            bigserial PRIMARY KEY,
    candidate_id  bigint NOT NULL REFERENCES candidates (id) ON DELETE CASCADE,
    decision      text NOT NULL CHECK (decision IN ('invite', 'reject', 'hold')),
    note          text NOT NULL DEFAULT '',     -- the line HR added to the template
    decided_by    bigint NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
CREATE INDEX decisions_candidate ON decisions (candidate_id, id DESC);
