"""`/settings/telegram`: link a Telegram chat to the signed-in user (a one-time code for the bot's `/start`),
see the link, unlink. The settings page shows the link's state in a card (`telegram/_card.html`, through the
`telegram_card()` helper this blueprint gives every template). Any signed-in user may link: viewers get the
messages, and the bot refuses them what they may not do here either."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from blueprints.access import check_role
from database.enums import Role
from extensions import client_address
from services.notifications import telegram

telegram_bp = Blueprint("telegram", __name__, url_prefix="/settings/telegram")


class ActionForm(FlaskForm):
    """A bare POST with its CSRF token (make a code, unlink)."""


def _enabled() -> bool:
    return bool(current_app.config.get("TELEGRAM_BOT_TOKEN"))


@telegram_bp.app_context_processor
def _card_helper():
    def telegram_card() -> dict:
        link = telegram.link_state(current_user.id) if current_user.is_authenticated else None
        return {"enabled": _enabled(), "link": link}

    return {"telegram_card": telegram_card}


@telegram_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


def _page(code: str | None = None, status: int = 200):
    return render_template("telegram/index.html", enabled=_enabled(), link=telegram.link_state(current_user.id),
                           code=code, ttl_minutes=int(telegram.CODE_TTL.total_seconds() // 60),
                           form=ActionForm()), status


@telegram_bp.get("/", strict_slashes=False)
def index():
    return _page()


@telegram_bp.post("/code")
def code():
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return _page(status=400)
    if not _enabled():
        flash("Telegram is off on this server: set TELEGRAM_BOT_TOKEN first.", "error")
        return _page(status=409)
    return _page(code=telegram.new_code(current_user.id))


@telegram_bp.post("/unlink")
def unlink():
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return _page(status=400)
    if telegram.unlink(current_user.id, actor=current_user.username, ip=client_address()):
        flash("Telegram unlinked: no more messages, and the chat's commands stop working.", "success")
    return redirect(url_for("telegram.index"))
