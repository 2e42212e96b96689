-- The whole schema of ARCHITECTURE.md. Applied once, recorded in schema_migrations.

-- Everyone who has talked to the bot: their language and how to address them.
CREATE TABLE telegram_users (
    telegram_id    bigint PRIMARY KEY,
    username       text,
    full_name      text NOT NULL DEFAULT '',
    language       text CHECK (language IN ('en', 'ru')),   -- NULL: follow Telegram's language_code
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now()
);

-- People who asked for a test task, and their CVAT account (their language: telegram_users).
CREATE TABLE candidates (
    id                bigserial PRIMARY KEY,
    telegram_id       bigint NOT NULL UNIQUE,
    telegram_username text,
    full_name         text NOT NULL DEFAULT '',
    cvat_username     text UNIQUE,
    cvat_password     text,
    cvat_user_id      integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    cvat_deleted_at   timestamptz,          -- the CVAT account was deleted (rows are kept)
    extra_attempts    integer NOT NULL DEFAULT 0 CHECK (extra_attempts >= 0)  -- granted by HR
);
CREATE INDEX candidates_telegram_username ON candidates (lower(telegram_username));

-- One test task per attempt. Progress: creating -> ready -> submitted -> graded (or failed).
CREATE TABLE attempts (
    id                     bigserial PRIMARY KEY,
    candidate_id           bigint NOT NULL REFERENCES candidates (id) ON DELETE CASCADE,
    number                 integer NOT NULL CHECK (number >= 1),
    status                 text NOT NULL DEFAULT 'creating'
                           CHECK (status IN ('creating', 'ready', 'submitted', 'graded', 'failed')),
    task_set               text NOT NULL DEFAULT 'default',
    image_subset           text[] NOT NULL DEFAULT '{}',
    cvat_task_name         text UNIQUE,     -- unique on CVAT too: lets a retry find its own task
    cvat_task_id           integer,
    cvat_job_id            integer,
    task_started           timestamptz,     -- when the job was handed to the candidate
    task_ended             timestamptz,     -- the candidate's last change in CVAT
    submitted_at           timestamptz,
    submitted_annotations  jsonb,           -- the work as it was at Submit: what is graded
    error                  text,
    lease_until            timestamptz,     -- a worker is building this attempt until then
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (candidate_id, number)
);
-- At most one attempt in progress per candidate: a double press cannot start two.
CREATE UNIQUE INDEX attempts_one_open ON attempts (candidate_id)
    WHERE status IN ('creating', 'ready');
CREATE INDEX attempts_status ON attempts (status);

-- Grading results per attempt: the original design's columns plus object-level figures.
CREATE TABLE metrics (
    attempt_id         bigint PRIMARY KEY REFERENCES attempts (id) ON DELETE CASCADE,
    candidate_id       bigint NOT NULL REFERENCES candidates (id) ON DELETE CASCADE,
    car_iou            double precision,
    plate_iou          double precision,
    plate_accuracy     double precision,
    task_started       timestamptz,
    task_ended         timestamptz,
    task_completed     interval GENERATED ALWAYS AS (task_ended - task_started) STORED,
    times_attempted    integer NOT NULL CHECK (times_attempted >= 1),
    score              double precision,
    band               text CHECK (band IN ('pass', 'borderline', 'fail')),
    car_precision      double precision,
    car_recall         double precision,
    car_matched_iou    double precision,
    car_missed         integer,
    car_extra          integer,
    plate_precision    double precision,
    plate_recall       double precision,
    plate_matched_iou  double precision,
    plate_missed       integer,
    plate_extra        integer,
    plate_cer          double precision,
    report             jsonb NOT NULL DEFAULT '{}'::jsonb,
    graded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metrics_candidate ON metrics (candidate_id);

-- The HR whitelist, under the original deployment's name. A deployment may replace this table
-- with a view over a postgres_fdw foreign table of the same columns (see README).
CREATE TABLE trainingdata_whitelist (
    telegram_id  bigint PRIMARY KEY,
    username     text,
    added_by     bigint,
    added_at     timestamptz NOT NULL DEFAULT now()
);

-- Per-HR preferences kept apart from the whitelist, so the whitelist can be a foreign table.
CREATE TABLE hr_preferences (
    telegram_id    bigint PRIMARY KEY,
    notifications  boolean NOT NULL DEFAULT true
);

-- Who did what to which candidate, when (also written to logs/actions.log).
CREATE TABLE action_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_id      bigint,
    action        text NOT NULL,
    candidate_id  bigint,               -- no foreign key: the log outlives deleted data
    ok            boolean NOT NULL DEFAULT true,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX action_log_actor ON action_log (actor_id, at);
CREATE INDEX action_log_candidate ON action_log (candidate_id, at);

-- aiogram FSM storage: dialog state survives restarts and is shared by replicas.
CREATE TABLE fsm_storage (
    bot_id                  bigint NOT NULL,
    chat_id                 bigint NOT NULL,
    user_id                 bigint NOT NULL,
    thread_id               bigint NOT NULL DEFAULT 0,
    business_connection_id  text NOT NULL DEFAULT '',
    destiny                 text NOT NULL DEFAULT 'default',
    state                   text,
    data                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
);
