-- Per-user event isolation across replicas: while one replica handles a user's update, it holds
-- that user's row here (a lease, renewed while the handler runs); another replica waits for it.
CREATE TABLE event_locks (
    key         text PRIMARY KEY,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL
);
