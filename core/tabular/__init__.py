"""Tables: Shapley values, interactions and glass-box models."""
