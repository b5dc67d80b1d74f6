"""Deploying from the console: the dialog, the deploy screen, and what the console tracks."""
