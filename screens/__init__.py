"""The Textual UI and the argparse command line (cli/): one package per screen, shared widgets."""

# The program's name, as people type it and as every message names it: spelled here once.
PROG = "deploy-console"
