-- Who did an event (an admin's actions), for the event log's actor filter.
ALTER TABLE events ADD COLUMN actor_id TEXT;
CREATE INDEX ix_events_actor ON events (actor_id, created_at, id);
