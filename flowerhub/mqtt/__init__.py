"""The project's MQTT broker (Mosquitto from Debian): certificates, configuration, launcher."""
