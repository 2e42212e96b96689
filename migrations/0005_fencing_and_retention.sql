-- Fencing: who holds an attempt's lease. Every write of a builder names its token, so a builder
-- whose lease ran out (and was taken over) changes nothing any more.
ALTER TABLE attempts ADD COLUMN lease_owner text;

-- Per-user event isolation across replicas is a PostgreSQL advisory lock now (no rows).
DROP TABLE event_locks;

-- A pooled account's password is needed only until it is handed out (the candidate's row has
-- it from then on): handed-out rows forget it.
ALTER TABLE pool_accounts ALTER COLUMN cvat_password DROP NOT NULL;
UPDATE pool_accounts SET cvat_password = NULL WHERE status = 'handed_out';

-- The account's life after the test: the bot deactivates it on CVAT some days after the last
-- attempt was graded (cvat_deactivated_at); HR may reactivate it (cvat_reactivated_at). The
-- password itself is forgotten (cvat_password NULL) once the last attempt is graded.
ALTER TABLE candidates
    ADD COLUMN cvat_deactivated_at timestamptz,
    ADD COLUMN cvat_reactivated_at timestamptz,
    -- this person's data was deleted before (when, and how many attempts they had used then)
    ADD COLUMN returned_after timestamptz,
    ADD COLUMN previous_attempts integer NOT NULL DEFAULT 0;

-- Tombstones of deleted candidates: no name, no id, only a keyed hash of the Telegram id, so
-- that the same person starting again is shown to HR as returning, not as someone new.
CREATE TABLE tombstone_key (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    secret  text NOT NULL
);
INSERT INTO tombstone_key (secret)
    VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

CREATE TABLE deleted_candidates (
    telegram_hash  text PRIMARY KEY,
    deleted_at     timestamptz NOT NULL DEFAULT now(),
    attempts_used  integer NOT NULL DEFAULT 0,   -- over every deletion
    deletions      integer NOT NULL DEFAULT 1
);
