"""Helpers shared by every source: table specs, money, organisation ids, dates, files."""
