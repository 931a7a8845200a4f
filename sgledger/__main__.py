"""`python -m sgledger` runs the CLI (used where the console script is not on PATH)."""

from sgledger.cli import main

main()
