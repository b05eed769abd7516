"""The `ttt` command line."""
