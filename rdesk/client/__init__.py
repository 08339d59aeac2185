"""rdesk.client package."""
