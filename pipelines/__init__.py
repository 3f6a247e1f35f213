"""Dagster wiring for Fundtrace: definitions, resources, schedules, quality bridge, CLI."""
