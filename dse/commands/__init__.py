"""One module per CLI command; each exposes add_parser(subparsers).

The CLI imports every command to build its parser, so a command imports the store, runs, the page's modules and
torch code inside run(), where the work starts; only torch-free core modules are imported at the top."""
