"""Market data: the symbol index, master contracts, quotes."""
