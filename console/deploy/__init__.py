"""Deploys: the planner, the red/black engine, releases, and the wiring to AWS, SSH, the store."""
