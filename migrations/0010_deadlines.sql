-- A test has a deadline (TEST_DEADLINE_HOURS after the job was handed over): one nudge before
-- it, and at the deadline the job is locked and the attempt closed as 'expired' (it counts as
-- used). Each message is claimed in its row before it is sent, so one replica sends it, once,
-- and a restart never sends it again.
ALTER TABLE attempts DROP CONSTRAINT attempts_status_check;
ALTER TABLE attempts ADD CONSTRAINT attempts_status_check
    CHECK (status IN ('creating', 'ready', 'submitted', 'graded', 'failed', 'expired'));
ALTER TABLE attempts
    ADD COLUMN reminded_at        timestamptz,   -- the nudge before the deadline was sent
    ADD COLUMN expired_at         timestamptz,   -- the deadline closed the attempt
    ADD COLUMN expiry_notified_at timestamptz;   -- the candidate was told it expired
