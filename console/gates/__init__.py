"""Checks outside the console: ticket checks, the release gate (require_build) and hooks."""
