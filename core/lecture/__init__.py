"""The lecture: curated examples and the warm-up of every default view."""
