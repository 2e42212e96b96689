-- Use an existing HR whitelist kept in another PostgreSQL database (as the original deployment
-- did) instead of the bot's own table. Run as a superuser in the bot's database after the first
-- start (migrations have created trainingdata_whitelist). Adjust host, dbname, user, password.
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE SERVER IF NOT EXISTS hr_server FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host 'db.example.com', dbname 'company', port '5432');
CREATE USER MAPPING IF NOT EXISTS FOR CURRENT_USER SERVER hr_server
    OPTIONS (user 'readonly_hr', password 'change-me');
CREATE SCHEMA IF NOT EXISTS hr_remote;
IMPORT FOREIGN SCHEMA public LIMIT TO (trainingdata_whitelist) FROM SERVER hr_server INTO hr_remote;
-- The remote table needs the columns telegram_id (bigint), username (text), added_by (bigint),
-- added_at (timestamptz); adding and removing HR users from the bot then writes to it.
ALTER TABLE trainingdata_whitelist RENAME TO trainingdata_whitelist_local;
CREATE VIEW trainingdata_whitelist AS SELECT * FROM hr_remote.trainingdata_whitelist;
