"""Avro schemas, one per table: the single source of truth for every sink."""
