"""The distributor: sources -> pipeline (resolve, dedup, decode, normalize, route) -> delivery -> sinks."""
