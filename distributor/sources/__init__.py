"""Sources: where raw uplinks come from (ChirpStack over MQTT or HTTP, device HTTP ingest)."""
