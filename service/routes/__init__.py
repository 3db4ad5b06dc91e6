"""Blueprints, one module per API family."""
