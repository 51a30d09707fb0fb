"""The device registry: PostgreSQL schema, records, the in-memory cache and the REST API."""
