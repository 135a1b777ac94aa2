-- Dashboard users, login throttling, notification templates and escalation (SQLite; the
-- PostgreSQL twin, ../postgres/0009_users_templates_escalation.sql, adds row-level security).
--
-- users: a dashboard login with an Argon2id password hash (PHC string, salt and parameters
-- inside). Each user acts through a token row of its own (token_id) whose secret is never
-- shown: sessions, the audit log and revocation work for users as for tokens. org_id is NULL
-- for operators. disabled: when an operator disabled it (its token is revoked then).
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    org_id BIGINT REFERENCES orgs(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    token_id BIGINT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    password_changed TEXT NOT NULL,
    disabled TEXT
);
CREATE INDEX users_org ON users (org_id);

-- Failed password logins, for throttling per account (the name as typed, lower case) and per
-- client address; rows older than the window are deleted as new ones come.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    client TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (account, at);
CREATE INDEX login_failures_client ON login_failures (client, at);

-- Notification templates (operators' own; no organisation's data): subject and body with
-- {placeholders} filled in when a notification is drawn.
CREATE TABLE notification_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

-- Escalation of a sent notification nobody acknowledged: level 0, 1 or 2, and when it last rose.
-- template_id: the template the notification is drawn with (NULL: the default one).
ALTER TABLE notifications ADD COLUMN escalation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN escalated TEXT;
ALTER TABLE notifications ADD COLUMN template_id BIGINT REFERENCES notification_templates(id) ON DELETE SET NULL;
