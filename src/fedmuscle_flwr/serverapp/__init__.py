"""serverapp."""
