-- How late events reach the log and the pipeline, per topic and event type
-- (event time vs ingest time vs Kafka timestamp; negative lag = clock skew at the source).
CREATE OR REPLACE VIEW event_lateness AS
SELECT
    topic,
    event_name,
    count(*) AS events,
    count(ingest_time) AS with_ingest_time,
    max(ingest_time - event_time) AS max_ingest_delay,
    avg(epoch_us(kafka_timestamp) - epoch_us(event_time)) / 1e6 AS mean_kafka_lag_s,
    max(epoch_us(kafka_timestamp) - epoch_us(event_time)) / 1e6 AS max_kafka_lag_s
FROM events
GROUP BY topic, event_name;
