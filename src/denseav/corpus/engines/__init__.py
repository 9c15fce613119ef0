"""Indexing engines: `local` (threads on this machine, the default) and `ray` (Ray Data, optional extra)."""
