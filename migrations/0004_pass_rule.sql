-- The verdict: a pass rule made of gates, its history, and the gates of every graded attempt.

-- Every rule that was ever in force; the newest row is the rule now. The first comes from
-- the settings (source 'settings'); HR's changes in the bot add rows (source 'hr').
CREATE TABLE pass_rules (
    id          bigserial PRIMARY KEY,
    gates       jsonb NOT NULL,             -- {"car_recall": [0.95, 0.85], ...}
    source      text NOT NULL CHECK (source IN ('settings', 'hr')),
    created_by  bigint,                     -- HR's Telegram id (NULL: from the settings)
    created_at  timestamptz NOT NULL DEFAULT now(),
    changed     integer                     -- attempts whose band this rule changed
);

-- Which rule banded the attempt, and each gate's value, thresholds and band.
ALTER TABLE metrics
    ADD COLUMN rule_id bigint REFERENCES pass_rules (id),
    ADD COLUMN gates   jsonb NOT NULL DEFAULT '[]'::jsonb;

-- Submit checks one read of the locked job and grades exactly that copy:
--   checking_until: a Submit is checking this attempt until then (one at a time, any replica);
--   grading_error / grading_failures / grading_retry_at: a grading that failed, shown to HR,
--   retried with a growing pause and given up after a few tries (HR's re-grade tries again).
ALTER TABLE attempts
    ADD COLUMN checking_until    timestamptz,
    ADD COLUMN grading_error     text,
    ADD COLUMN grading_failures  integer NOT NULL DEFAULT 0,
    ADD COLUMN grading_retry_at  timestamptz;
