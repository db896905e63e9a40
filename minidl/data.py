"""Data (placeholder)."""
