-- The warm pool: CVAT accounts and tasks made before anyone asks for them, so a candidate waits
-- for one CVAT round trip instead of the whole build. Rows are the truth: a pooled thing exists
-- on CVAT only after its row (with its name) was written, so a crash never leaves one unknown,
-- and counting rows is what keeps the pool within its size.
--
-- status: creating (a refill is making it; lease_until says until when) -> ready -> handed_out
-- (to candidate_id / attempt_id), or retiring (being deleted from CVAT: pool shrunk, task set
-- changed). A thing found gone from CVAT loses its row.

CREATE TABLE pool_accounts (
    id              bigserial PRIMARY KEY,
    status          text NOT NULL DEFAULT 'creating'
                    CHECK (status IN ('creating', 'ready', 'handed_out', 'retiring')),
    cvat_username   text NOT NULL UNIQUE,
    cvat_password   text NOT NULL,
    cvat_user_id    integer,
    inactive        boolean NOT NULL DEFAULT true,   -- cannot log in until handed out
    lease_until     timestamptz,
    candidate_id    bigint REFERENCES candidates (id) ON DELETE SET NULL,
    checked_at      timestamptz,                     -- last seen on CVAT
    created_at      timestamptz NOT NULL DEFAULT now(),
    ready_at        timestamptz,
    handed_out_at   timestamptz
);
CREATE INDEX pool_accounts_status ON pool_accounts (status, id);

CREATE TABLE pool_tasks (
    id              bigserial PRIMARY KEY,
    status          text NOT NULL DEFAULT 'creating'
                    CHECK (status IN ('creating', 'ready', 'handed_out', 'retiring')),
    task_set        text NOT NULL,
    image_subset    text[] NOT NULL,
    cvat_task_name  text NOT NULL UNIQUE,
    cvat_task_id    integer,
    cvat_job_id     integer,
    lease_until     timestamptz,
    attempt_id      bigint REFERENCES attempts (id) ON DELETE SET NULL,
    checked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ready_at        timestamptz,
    handed_out_at   timestamptz
);
CREATE INDEX pool_tasks_status ON pool_tasks (status, task_set, id);

-- A candidate given a pooled (inactive) account: the build activates it, in parallel with the
-- job assignment, and clears the flag.
ALTER TABLE candidates ADD COLUMN cvat_activation_pending boolean NOT NULL DEFAULT false;
