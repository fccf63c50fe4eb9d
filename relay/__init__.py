"""The Anode relay: orders, validates, stores and fans out notebook events."""

__version__ = "0.1.0"
