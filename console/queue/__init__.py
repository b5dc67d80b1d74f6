"""The release queue: waiting turns, locks, freezes, promotion, and the runner that executes."""
