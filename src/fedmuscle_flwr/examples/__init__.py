"""Examples of user extensions (plugins) referenced by bundled client profiles."""
