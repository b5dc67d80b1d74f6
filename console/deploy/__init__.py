"""Deploys: the planner, the red/black engine and its steps (launch, configure over SSH,
traffic through balancers/, rollback), releases, and the wiring to AWS, SSH and the store."""
