"""Placeholder: filled by the layer work."""

__all__: list[str] = []
