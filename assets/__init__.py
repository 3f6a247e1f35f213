"""Fundtrace assets, one package per layer: raw -> staging -> intermediate -> marts.

Each layer is a Dagster asset group and a DuckDB schema of the same name.
"""
