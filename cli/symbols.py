"""`flask symbols ...`: import a master contract, generate the sample contract, show import status."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from cli import ready
from database import db
from database.symbol import MasterContractStatus
from services.market import master_contract

symbols_cli = AppGroup("symbols", help="The symbol master: import a broker's contract, sample data, status.")


class _Bar:
    """A click progress bar fed by import_rows(progress=...) callbacks (done, total): one bar while
    rows are read and mapped, a second while they are loaded."""

    def __init__(self) -> None:
        self.bar = None
        self.shown = 0
        self.phases = iter(("reading", "loading"))

    def __call__(self, done: int, total: int) -> None:
        total = max(total, 1)
        if self.bar is None or self.bar.length != total or done < self.shown:
            self.close()
            self.bar = click.progressbar(length=total, label=next(self.phases, "loading"), show_pos=True)
            self.shown = 0
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


def _print_result(result) -> None:
    click.echo(f"mapped {result.rows_mapped:,} symbols, skipped {result.rows_skipped:,} of {result.rows_total:,} rows "
               f"in {result.seconds:.2f} s")
    for reason, n in sorted(result.skipped_by_reason.items(), key=lambda kv: -kv[1]):
        click.echo(f"  skipped {n:,}: {reason}")


@symbols_cli.command("import")
@click.option("--broker", default="zerodha", show_default=True, help="Whose instruments format the file is in.")
@click.option("--force", is_flag=True, help="Run even if the status says an import is running.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_command(broker: str, force: bool, path: str) -> None:
    """Import a broker's instruments CSV (Zerodha's format) and replace the contract atomically."""
    ready()
    bar = _Bar()
    try:
        result = master_contract.import_file(path, broker=broker, progress=bar, force=force)
    except master_contract.ContractImportError as exc:
        bar.close()
        raise click.ClickException(str(exc)) from exc
    bar.close()
    _print_result(result)


@symbols_cli.command("sample")
@click.option("--rows", type=int, default=20_000, show_default=True, help="How many instruments to generate.")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True),
              help="Write a Zerodha-format CSV here instead of loading it.")
@with_appcontext
def sample_command(rows: int, out: str | None) -> None:
    """Generate the realistic sample contract: write it as a CSV, or load it (replacing the contract)."""
    if out:
        with open(out, "w", newline="", encoding="utf-8") as f:
            n = master_contract.write_zerodha_csv(master_contract.sample_rows(rows), f)
        click.echo(f"wrote {n:,} instruments to {out}")
        return
    ready()
    bar = _Bar()
    try:
        result = master_contract.import_rows(master_contract.sample_rows(rows), broker="sample",
                                             source="flask symbols sample", progress=bar)
    except master_contract.ContractImportError as exc:
        bar.close()
        raise click.ClickException(str(exc)) from exc
    bar.close()
    _print_result(result)


@symbols_cli.command("status")
@click.option("--broker", default=None, help="One broker's status (default: every broker with a status).")
@with_appcontext
def status_command(broker: str | None) -> None:
    """Show the state of the last (or running) import, and the number of symbols loaded."""
    ready()
    brokers = [broker] if broker else list(db.session.execute(select(MasterContractStatus.broker)).scalars())
    click.echo(f"symbols loaded: {master_contract.symbol_count():,}")
    if not brokers:
        click.echo("no import has run")
    for name in brokers:
        s = master_contract.get_status(name)
        line = (f"{name}: {s['state']}  rows {s['rows_done']:,}/{s['rows_total']:,}  skipped {s['rows_skipped']:,}"
                f"  started {s['started_at'] or '-'}  finished {s['finished_at'] or '-'}")
        click.echo(line)
        if s["source"]:
            click.echo(f"  source: {s['source']}")
        if s["error"]:
            click.echo(f"  error: {s['error']}")
