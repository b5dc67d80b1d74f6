"""Drift and provenance: where the fleet differs from what deploys, stacks and config made."""
