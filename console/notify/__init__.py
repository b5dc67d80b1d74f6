"""Notifications: the messages an event becomes, the channels that send them (webhook, email,
command) and the runner's delivery loop over the store's outbox (at least once, with retries)."""
