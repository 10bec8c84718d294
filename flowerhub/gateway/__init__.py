"""The MQTT <-> Kafka gateway (``flowerhub gateway run``): the boundary between the homes'
MQTT broker and the event log. Pure routing in :mod:`routing`; wiring in :mod:`service`."""
