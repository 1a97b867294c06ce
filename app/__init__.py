"""The workbench front end, the worker process and the command line."""
