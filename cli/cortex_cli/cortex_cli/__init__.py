"""cortex_cli: the `cortex` command."""
