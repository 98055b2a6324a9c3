"""The fast symbol/token lookups over database.symbol (filled by the symbol-master work)."""


def init_db() -> None:
    return None
