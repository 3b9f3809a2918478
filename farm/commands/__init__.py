"""The ``farm`` subcommands, one module per group of commands; ``farm.cli`` loads only the one asked for."""
