"""Intermediate layer: sources combined into one model (flows, organisation identity)."""
