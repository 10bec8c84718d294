"""The event-log archive: every topic into append-only Parquet part files by topic and hour.

``layout`` (paths, resume positions), ``rows`` (Kafka record -> archive row), ``writer``
(atomic part files), ``archiver`` (the Kafka consumer loop). Read it with ``analytics.db``.
"""
