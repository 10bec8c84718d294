-- Records the codec rejected (and tombstones): kept with their bytes, error class and reason.
CREATE OR REPLACE VIEW undecodable AS
SELECT
    topic,
    "partition",
    "offset",
    key,
    value,
    headers,
    kafka_timestamp,
    archived_at,
    decode_error,
    decode_reason
FROM archive_rows
WHERE decode_error IS NOT NULL;
