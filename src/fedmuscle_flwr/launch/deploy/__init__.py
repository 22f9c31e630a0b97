"""launch/deploy."""
