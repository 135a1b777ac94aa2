-- Dashboard sessions (SQLite; the PostgreSQL twin is ../postgres/0002_sessions.sql). A session
-- is opened with an API token and dies with it; only the SHA-256 of the cookie is kept.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id BIGINT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    secret_sha256 TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
