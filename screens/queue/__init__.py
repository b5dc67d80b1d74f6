"""The release queue screen and its dialogs (freeze, lock, lift)."""
