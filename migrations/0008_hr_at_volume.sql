-- HR at volume: roles, how each HR user hears about results (each, a daily digest, nothing),
-- the privacy notice and each person's consent, and the date a forgotten person was tested.

-- Roles: a viewer reads and exports; an admin also decides, grants attempts, deletes, edits
-- the pass rule and the whitelist. HR_ADMIN_IDS are always admins. Everyone on the whitelist
-- before roles existed could do everything, so they stay admins; people added from now on
-- start as viewers.
ALTER TABLE hr_preferences
    ADD COLUMN role text NOT NULL DEFAULT 'viewer' CHECK (role IN ('viewer', 'admin')),
    ADD COLUMN notify text NOT NULL DEFAULT 'each' CHECK (notify IN ('each', 'digest', 'none')),
    ADD COLUMN digest_at time NOT NULL DEFAULT '09:00',   -- in the TIMEZONE setting
    ADD COLUMN digest_sent_on date;                       -- the local day of the last digest
UPDATE hr_preferences SET notify = CASE WHEN notifications THEN 'each' ELSE 'none' END;
ALTER TABLE hr_preferences DROP COLUMN notifications;
INSERT INTO hr_preferences (telegram_id, role)
    SELECT telegram_id, 'admin' FROM trainingdata_whitelist
    ON CONFLICT (telegram_id) DO UPDATE SET role = 'admin';

-- Every privacy notice ever shown (its version is a hash of its texts), and who agreed to
-- which, when. The consent goes with the person's other data when they are forgotten.
CREATE TABLE privacy_notices (
    version        text PRIMARY KEY,
    text_en        text NOT NULL,
    text_ru        text NOT NULL,
    first_shown_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE telegram_users
    ADD COLUMN consent_version text REFERENCES privacy_notices (version),
    ADD COLUMN consented_at    timestamptz;

-- "Already tested on <date>": kept in the anonymous tombstone, and shown on the card of a
-- person who comes back.
ALTER TABLE deleted_candidates ADD COLUMN tested_at timestamptz;
ALTER TABLE candidates ADD COLUMN previously_tested_at timestamptz;

-- The lists HR work from: attempts by status and date.
CREATE INDEX attempts_submitted_at ON attempts (submitted_at);
