"""Staging layer: typed, canonical rows per source with provenance; bad rows quarantined."""
