"""Bring your own model and data: formats, safe loading, dry runs."""
