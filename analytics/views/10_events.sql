-- Every decoded event, with the clocks kept apart (all naive UTC):
--   event_time       when it happened (the event's own field)
--   ingest_time      when the pipeline learned it, where that differs (the event's own field;
--                    NULL means "learned at event_time")
--   known_time       coalesce(ingest_time, event_time): when it was knowable
--   kafka_timestamp  the Kafka record timestamp (producer CreateTime or broker LogAppendTime)
--   archived_at      when the archiver wrote the record to the archive
-- Undecodable records are in `undecodable`, never silently dropped.
CREATE OR REPLACE VIEW events AS
SELECT
    topic,
    "partition",
    "offset",
    key,
    event_name,
    CAST(payload AS JSON) AS payload,
    event_time,
    ingest_time,
    coalesce(ingest_time, event_time) AS known_time,
    kafka_timestamp,
    timestamp_type,
    archived_at,
    kafka_timestamp - event_time AS kafka_lag,
    value
FROM archive_rows
WHERE decode_error IS NULL;
