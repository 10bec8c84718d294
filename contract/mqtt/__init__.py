"""The MQTT side of the contract: the per-home topic layout (pure), the connection settings
and the one asyncio MQTT client of the project (paho-mqtt underneath).

Homes speak MQTT over TLS with one certificate each (CN = site id) to a broker (Mosquitto);
the gateway (``flowerhub gateway run``) moves messages between these topics and Kafka. The
payload on MQTT is the same Avro single-object encoding as on Kafka.
"""
