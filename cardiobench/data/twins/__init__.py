"""Physically grounded phantom generators; labels are measured from the phantom geometry."""
