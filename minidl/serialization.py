"""save/load (placeholder)."""

__all__: list[str] = []
