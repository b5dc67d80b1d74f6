"""The Textual UI and the argparse command line (cli/): one package per screen, shared widgets."""
