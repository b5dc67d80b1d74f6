"""The embedded AWS world for the demo and tests: moto, the seed fleet, the SSH jump host."""
