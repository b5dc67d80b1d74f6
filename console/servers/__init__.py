"""The processes that serve sessions: the runner's door, the SSH server, the web front."""
