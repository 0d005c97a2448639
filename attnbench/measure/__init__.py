"""Measurements, one concern per module; each returns data and never prints."""
