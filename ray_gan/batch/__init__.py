"""Batch generation on Ray Data."""
