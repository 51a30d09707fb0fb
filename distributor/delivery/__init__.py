"""Delivery: per-consumer lanes, the durable spill store, and the dispatcher that fans out."""
