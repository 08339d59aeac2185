"""rdesk.host package."""
