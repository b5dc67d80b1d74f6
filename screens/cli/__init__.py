"""The command line: one module per command group; screens/main.py only dispatches."""
