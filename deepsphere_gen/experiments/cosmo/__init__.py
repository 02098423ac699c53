"""Cosmological inference on a survey footprint (being split into modules)."""
