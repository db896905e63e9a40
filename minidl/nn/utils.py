"""nn utilities (placeholder)."""
