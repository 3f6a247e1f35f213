"""Raw layer: one module per source system, files copied into DuckDB as published (text)."""
