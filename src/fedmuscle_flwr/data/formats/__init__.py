"""A client's own labelled files: one module per format (see :mod:`.base`)."""
