"""Convention profiles (placeholder)."""

__all__: list[str] = []
