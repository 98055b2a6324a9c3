"""The badge every page shows in analyze mode: which market hours the analyze-mode exchange follows
(ANALYZE_MARKET_HOURS: the exchange calendar, or a practice market open around the clock)."""

from __future__ import annotations

from flask_login import current_user

from services.trading import venues
from services.trading.paper import hours

LABELS = {hours.EXCHANGE: "Analyze · exchange hours", hours.ALWAYS: "Analyze · practice market, always open"}
TITLES = {hours.EXCHANGE: "Analyze mode follows the market calendar: sessions, holidays, square-off times",
          hours.ALWAYS: "Analyze mode's market is open around the clock (ANALYZE_MARKET_HOURS=always)"}


def analyze_hours() -> tuple[str, str] | None:
    """(label, title) of the badge for the signed-in user in analyze mode, else None."""
    if not current_user.is_authenticated or not venues.is_analyze(current_user.id):
        return None
    setting = hours.setting()
    return LABELS[setting], TITLES[setting]
