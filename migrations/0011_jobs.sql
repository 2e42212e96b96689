-- The durable job queue between the bot (which talks) and the workers (which work). A job is
-- claimed with FOR UPDATE SKIP LOCKED under a lease its worker renews; a job whose lease ran
-- out (its worker died) is claimed again, up to max_tries. Completion is fenced by locked_by,
-- so a worker that lost its lease changes nothing. The outcome (a value or an exception) is
-- stored pickled in `result`; `delivered_at` is set by whoever told the user about it.
CREATE TABLE jobs (
    id           bigserial PRIMARY KEY,
    queue        text NOT NULL DEFAULT 'work' CHECK (queue IN ('work', 'bot')),
    kind         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    arguments    bytea,                          -- pickled (a grading job's bytes and keys)
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    tries        integer NOT NULL DEFAULT 0,
    max_tries    integer NOT NULL DEFAULT 3,
    run_after    timestamptz NOT NULL DEFAULT now(),
    locked_by    text,
    locked_until timestamptz,
    progress     jsonb NOT NULL DEFAULT '{}',
    result       bytea,
    raised       boolean NOT NULL DEFAULT false,
    error        text,
    dedupe       text,
    delivered_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
-- What a worker claims next: queued and due, or running with its lease run out.
CREATE INDEX jobs_claimable ON jobs (queue, id) WHERE status IN ('queued', 'running');
-- One unfinished job per dedupe key: a second press joins the first job.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe) WHERE status IN ('queued', 'running');
-- Finished builds nobody has told the user about (the waiting bot died).
CREATE INDEX jobs_undelivered ON jobs (finished_at) WHERE status = 'done' AND delivered_at IS NULL;
