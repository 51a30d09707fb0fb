"""Sinks: where messages go (HTTP webhooks, MQTT topics). One module per kind."""
