-- Notifications to organisations (SQLite; the PostgreSQL twin, ../postgres/0005_notifications.sql,
-- adds its row-level security policy). servers: JSON list of the affected servers and what was
-- seen, frozen when the notification was made. state: new, sent, acknowledged,
-- rescan-requested, resolved.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    ticket TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    servers TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX notifications_org ON notifications (org_id, state);
