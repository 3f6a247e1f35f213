"""Benchmark: synthetic raw data in the real formats and `make bench`."""
