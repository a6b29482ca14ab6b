-- Who did an event (an admin's actions), for the event log's actor filter.
ALTER TABLE events ADD COLUMN actor_id CHAR(36) NULL AFTER user_id, ADD KEY ix_events_actor (actor_id, created_at, id);
