"""`flask logs ...`: log retention (purge old API, traffic, latency and system log rows)."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from cli import ready
from services.logs import retention as log_retention

logs_cli = AppGroup("logs", help="The application's logs: purge old rows.")


@logs_cli.command("purge")
@click.option("--older-than", "older_than", default=None,
              help="Age of the rows to delete: 30d, 12h, 2w (default: the retention setting, in days).")
@click.option("--include-audit", is_flag=True, help="Purge the audit trail too (kept forever otherwise).")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="Rows deleted per transaction.")
@with_appcontext
def purge_command(older_than: str | None, include_audit: bool, batch_size: int) -> None:
    """Delete log rows older than --older-than from api_logs, traffic_logs, order_latency and
    system_logs (and audit_events with --include-audit), in batches, printing progress."""
    ready()
    if older_than is None:
        days = log_retention.retention_days()
        if days <= 0:
            click.echo("log retention is 0 (keep forever): nothing to purge; pass --older-than to purge anyway")
            return
        older_than = f"{days}d"
    try:
        age = log_retention.parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None

    def progress(table: str, done: int) -> None:
        click.echo(f"  {table}: {done:,} rows deleted so far")

    click.echo(f"purging log rows older than {older_than}" + (" (audit trail included)" if include_audit else ""))
    deleted = log_retention.purge(age, include_audit=include_audit, batch_size=batch_size, progress=progress)
    for table, n in deleted.items():
        click.echo(f"{table}: {n:,} deleted")
    click.echo(f"done: {sum(deleted.values()):,} rows deleted")
