"""The `sgledger` application: command line, scenario runner and the in-process pipeline."""
