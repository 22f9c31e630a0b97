"""clientapp."""
