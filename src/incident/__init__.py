"""Incident command and mass notification for water, gas and district-heating utilities."""

__version__ = "0.1.0"
