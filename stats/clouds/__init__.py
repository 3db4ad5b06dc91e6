"""Clouds: the s2cloudless model (model), the per-pixel cloud cells (cells)."""
