-- What the archive holds per topic-partition: offsets, record counts and time spans.
-- `offset_span - records` counts offsets never seen (compaction, transaction markers).
CREATE OR REPLACE VIEW archive_coverage AS
SELECT
    topic,
    "partition",
    min("offset") AS first_offset,
    max("offset") AS last_offset,
    count(*) AS records,
    max("offset") - min("offset") + 1 AS offset_span,
    count(decode_error) AS undecodable,
    min(kafka_timestamp) AS first_kafka_timestamp,
    max(kafka_timestamp) AS last_kafka_timestamp,
    min(event_time) AS first_event_time,
    max(event_time) AS last_event_time
FROM archive_rows
GROUP BY topic, "partition";
