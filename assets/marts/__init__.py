"""Marts: the published answers (DuckDB schema `marts`). Every table and column is commented."""
