-- This deployment's mark on CVAT. Two bots on one CVAT with their own databases (staging beside
-- production, a database reset or restored from an older backup) count their rows from 1 alike,
-- so a task name made of row ids alone can be another deployment's: the names of the tasks the
-- bot creates carry this random mark, and a task is resumed or reused only under it.
-- The mark is made by the bot the first time it needs one, not here: a database copied from a
-- migrated template (as the tests do, or CREATE DATABASE ... TEMPLATE) must get its own.
CREATE TABLE installation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    mark        text NOT NULL CHECK (mark ~ '^[0-9a-f]{10}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A pooled thing whose build keeps failing (whatever the error) is tried again after a pause
-- that doubles with each failure (10 s, 20 s, ... at most an hour), never in a tight loop.
ALTER TABLE pool_accounts ADD COLUMN failures integer NOT NULL DEFAULT 0;
ALTER TABLE pool_tasks ADD COLUMN failures integer NOT NULL DEFAULT 0;
