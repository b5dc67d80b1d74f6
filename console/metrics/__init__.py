"""Prometheus metrics of a serving process (runner, sshd, web): one registry per process."""
