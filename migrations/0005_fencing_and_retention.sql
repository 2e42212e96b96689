-- Fencing: who holds an attempt's lease. Every write of a builder names its token, so a builder
-- whose lease ran out (and was taken over) changes nothing any more.
ALTER TABLE attempts ADD COLUMN lease_owner text;
