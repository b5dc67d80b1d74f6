"""The fleet: inventory from the fewest AWS calls, snapshots, the one shared poller."""
