-- Tests that stay secret and fair: versioned answer keys, the figures an attempt had before a
-- re-grade, and flags for copied or implausible work.

-- The answer key of a task set, version by version (the newest row of a set is in force).
-- Each row is the whole key: the annotations file (NULL: the set's own annotations.xml), the
-- images and objects excluded from grading, and which images this version changed (attempts
-- graded on them under an older version are re-graded).
CREATE TABLE answer_keys (
    id                bigserial PRIMARY KEY,
    task_set          text NOT NULL,
    version           integer NOT NULL CHECK (version >= 1),
    annotations       text,                            -- CVAT for images 1.1 XML, or NULL
    excluded_images   text[] NOT NULL DEFAULT '{}',
    excluded_objects  jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [["scene_031.jpg", 3], ...]
    affected_images   text[] NOT NULL DEFAULT '{}',
    change            text NOT NULL,                   -- what this version changed, for people
    created_by        bigint,                          -- HR's Telegram id; NULL: command line
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_set, version)
);

-- The key version an attempt was graded on, and what its stored work looks like (boxes and
-- texts per image: what the similarity of two candidates' work is judged on).
ALTER TABLE metrics
    ADD COLUMN key_version integer NOT NULL DEFAULT 1,
    ADD COLUMN fingerprint jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The figures an attempt had before each re-grade (the metrics row as it was).
CREATE TABLE metrics_history (
    id           bigserial PRIMARY KEY,
    attempt_id   bigint NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    key_version  integer,
    figures      jsonb NOT NULL,
    replaced_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metrics_history_attempt ON metrics_history (attempt_id, id);

-- Flags for HR (never a verdict): kind 'similar' (near-identical work to another attempt),
-- 'same_person' (the same work exactly, or the same contact), 'too_fast'. A pair's flag is
-- kept on both attempts. evidence: what HR read (figures, images, plate texts).
CREATE TABLE flags (
    id             bigserial PRIMARY KEY,
    attempt_id     bigint NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('similar', 'same_person', 'too_fast')),
    other_attempt  bigint REFERENCES attempts (id) ON DELETE CASCADE,
    evidence       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX flags_one ON flags (attempt_id, kind, coalesce(other_attempt, 0));
CREATE INDEX attempts_images ON attempts USING gin (image_subset);
