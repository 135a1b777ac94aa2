-- Per-campaign state of an observation, decided at ingest (JSON object: campaign id as in the
-- scan result, "proxy-logon", to the probe's state for that campaign's CVEs). Same text in
-- ../postgres/0004_observation_campaigns.sql.
ALTER TABLE observations ADD COLUMN campaigns TEXT NOT NULL DEFAULT '{}';
