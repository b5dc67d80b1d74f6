"""What the screens share: tables, the fleet header, step lists, formats, the confirm dialog."""
