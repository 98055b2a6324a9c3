"""`python -m feed`: the feed server on WEBSOCKET_HOST:WEBSOCKET_PORT, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os


def main() -> None:
    # Beside the web workers, the feed yields the CPU to them: page and order latency come first.
    os.nice(int(os.environ.get("ALGOBRIDGE_FEED_NICE", "5")))
    from app import create_app
    from feed.server import run

    # The web process runs the scheduled jobs and loads the sample contract; the feed only reads.
    app = create_app({"SCHEDULER_ENABLED": False, "SAMPLE_CONTRACT": False})
    logging.getLogger("algobridge.feed").setLevel(app.config.get("LOG_LEVEL", "INFO"))
    run(app)


if __name__ == "__main__":
    main()
