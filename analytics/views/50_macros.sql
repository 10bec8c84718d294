-- Per-topic access without a view per (possibly prefixed) topic name:
--   SELECT * FROM topic_events('site.telemetry')
--   SELECT * FROM topic_window('site.telemetry', TIMESTAMP '2026-09-21 14:00', TIMESTAMP '2026-09-21 15:00')
-- topic_window filters on event_time (when it happened); use kafka_timestamp for log time.
CREATE OR REPLACE MACRO topic_events(t) AS TABLE
    SELECT * FROM events WHERE topic = t;

CREATE OR REPLACE MACRO topic_window(t, since, until) AS TABLE
    SELECT * FROM events WHERE topic = t AND event_time >= since AND event_time < until;
