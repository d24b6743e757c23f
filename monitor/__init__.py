"""monitor: poll news sources, match tracked actors and topics, alert through channels."""

__version__ = "0.1.0"
