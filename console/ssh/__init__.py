"""SSH to instances: the asyncssh client for configure steps, jump hosts, host keys."""
