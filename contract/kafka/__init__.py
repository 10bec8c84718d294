"""The one connection module: settings, flags, client factories, admin helpers, records.

- :mod:`contract.kafka.settings`: :class:`KafkaSettings` (pydantic-settings, ``FLOWERHUB_*``)
- :mod:`contract.kafka.cliargs`: the same flags on every CLI verb, settings from them
- :mod:`contract.kafka.clients`: producer / consumer / admin factories, start with a reason
- :mod:`contract.kafka.admin`: wait for brokers, partitions, create topics (one path)
- :mod:`contract.kafka.records`: :class:`RawRecord` and the ``ConsumerRecord`` converter

Everything of ours that talks to Kafka goes through here (Faust's own clients excepted:
the streams app builds Faust's broker credentials from the same settings).
"""

from contract.kafka.records import Headers, RawRecord, raw_record
from contract.kafka.settings import (
    KafkaSettings,
    KafkaSettingsError,
    SaslMechanism,
    SecurityProtocol,
    settings_for,
)

__all__ = [
    "Headers",
    "KafkaSettings",
    "KafkaSettingsError",
    "RawRecord",
    "SaslMechanism",
    "SecurityProtocol",
    "raw_record",
    "settings_for",
]
