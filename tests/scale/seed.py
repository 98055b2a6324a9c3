"""Seed the database of a scale test, in a process of its own (the test process keeps no app of
this database): users, API keys, a paper broker session, each user's mode.

    python -m tests.scale.seed '<json spec>'     # with the server's environment (DATABASE_URL, ...)

spec: {"symbols": 2000, "users": [{"name": "alice", "keys": 2, "live": false, "paper_session": false,
                                    "zerodha_token": null}, ...]}
Prints one JSON line: {"alice": {"id": 1, "keys": [{"id": 1, "key": "<plaintext>"}, ...]}, ...}
"""

from __future__ import annotations

import json
import sys

from services.trading import venues


def main(spec: dict) -> dict:
    from app import create_app
    from database import db

    app = create_app({"SETUP_ENVIRONMENT": True, "SCHEDULER_ENABLED": False})
    out: dict = {}
    try:
        with app.app_context():
            from services.accounts import api_keys, broker_login
            from services.market.master_contract import ensure_sample_contract
            from tests.helpers.accounts import make_user

            ensure_sample_contract(rows=spec.get("symbols", 2000))  # the servers hear of it (cache)

            for entry in spec["users"]:
                user = make_user(entry["name"], entry.get("role", "trader"))
                keys = []
                for i in range(entry.get("keys", 1)):
                    row, key = api_keys.create_key(user, f"{entry['name']}-{i}", ["orders", "read", "data"])
                    db.session.commit()
                    keys.append({"id": row.id, "key": key})
                if entry.get("paper_session"):
                    broker_login.complete_login(user, "paper", {})
                    db.session.commit()
                if entry.get("zerodha_token"):  # a live session at the fake Kite the server is pointed at
                    broker_login.start_login(user, "zerodha")
                    broker_login.complete_login(user, "zerodha", {"request_token": entry["zerodha_token"],
                                                                  "status": "success"})
                    db.session.commit()
                if entry.get("live"):
                    venues.set_analyze(user.id, False)
                    db.session.commit()
                out[entry["name"]] = {"id": user.id, "keys": keys}
    finally:
        app.extensions["algobridge.writer"].shutdown(timeout=10)
        app.extensions["algobridge.cache"].stop()
        with app.app_context():
            db.engine.dispose()
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
