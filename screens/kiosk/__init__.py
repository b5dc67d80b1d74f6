"""The kiosk: the read-only wall screen."""
