"""Optimizers (placeholder)."""
