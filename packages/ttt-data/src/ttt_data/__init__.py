"""ttt-data."""
