"""deploy/: the systemd unit, the image and the compose file run what the README says, and restart it.

Each file is read as the tool that consumes it would (the unit by `systemd-analyze verify` as well,
where it is installed). The compose file is read by a reader of the YAML subset it is written in, which
refuses anything else (and agrees with PyYAML, where that is installed); docker is not needed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

import config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "algobridge.service"
RESTARTING = {"always", "unless-stopped", "on-failure"}
GRACEFUL_TIMEOUT = int(next(s.default for s in config.SETTINGS if s.name == "WEB_GRACEFUL_TIMEOUT"))


# --- the README's production commands ------------------------------------------------------------------

def _readme_commands() -> list[tuple[dict[str, str], list[str]]]:
    """The indented command lines of the README's "Production" section: (environment, argv)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Production.*?(?=^## )", text, re.S | re.M)
    assert section, 'README.md has no "## Production" section'
    commands = []
    for line in section.group(0).splitlines():
        if not line.startswith("    ") or ".venv/bin/" not in line:
            continue
        words = shlex.split(line, comments=True)
        env = {}
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words:
            commands.append((env, words))
    return commands


def _readme_command(program: str) -> tuple[dict[str, str], list[str]]:
    found = [c for c in _readme_commands() if PurePosixPath(c[1][0]).name == program]
    assert found, f"the README's Production section runs no {program}"
    return found[0]


def test_the_readme_commands_are_found():
    assert _readme_command("gunicorn")[1][0] == ".venv/bin/gunicorn"
    env, argv = _readme_command("flask")
    assert argv[1:] == ["db", "upgrade"]
    assert env["FLASK_APP"] == "app:create_app"


def _same_command(argv: list[str], workdir: str, readme_argv: list[str]) -> None:
    """`argv`, run from `workdir`, is the README's command run from the repository root."""
    program = PurePosixPath(argv[0])
    assert program.is_absolute(), argv
    assert str(program.relative_to(workdir)) == readme_argv[0]
    assert argv[1:] == readme_argv[1:]


# --- systemd ---------------------------------------------------------------------------------------------

def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"{raw!r} is outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{raw!r} is not KEY=value"
        current.append((key.strip(), value.strip()))
    return sections


def _one(entries: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in entries if k == key]
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def test_the_systemd_unit_serves_the_readme_command_and_restarts_on_failure():
    unit = _unit(UNIT)
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    workdir = _one(service, "WorkingDirectory")

    _same_command(shlex.split(_one(service, "ExecStart")), workdir, _readme_command("gunicorn")[1])
    readme_env, readme_migrate = _readme_command("flask")
    _same_command(shlex.split(_one(service, "ExecStartPre")), workdir, readme_migrate)
    environment = dict(pair.split("=", 1) for k, v in service if k == "Environment" for pair in shlex.split(v))
    assert readme_env.items() <= environment.items()

    assert _one(service, "Restart") in {"on-failure", "always"}
    assert 0 < float(_one(service, "RestartSec")) <= 10
    assert _one(service, "User") not in {"root", "0"}
    # gunicorn's master is the main process and tells systemd it is ready; stopping signals it alone,
    # and it gets longer than the workers' graceful timeout.
    assert _one(service, "Type") == "notify"
    from gunicorn import systemd as gunicorn_systemd  # the notification gunicorn sends

    assert callable(gunicorn_systemd.sd_notify)
    assert _one(service, "KillMode") == "mixed"
    assert int(_one(service, "TimeoutStopSec")) > GRACEFUL_TIMEOUT
    assert _one(service, "UMask") == "0077"
    assert _one(unit["Install"], "WantedBy") == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the unit's contents are checked by the test above)")
    # The unit names the install paths; here they are this checkout and the running virtualenv.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/algobridge/.venv", sys.prefix)
    (tmp_path / UNIT.name).write_text(text.replace("/opt/algobridge", str(ROOT)), encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(tmp_path / UNIT.name)],  # noqa: S603 - a fixed program
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # an unknown key or a bad value is only a warning there


# --- the image -------------------------------------------------------------------------------------------

def _dockerfile() -> list[tuple[str, str]]:
    instructions, pending = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if raw.strip().startswith("#") and not pending:
            continue
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            word, _, rest = pending.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
        pending = ""
    return instructions


def test_the_image_installs_the_requirements_and_serves_the_readme_command_as_a_non_root_user():
    steps = _dockerfile()
    words = [w for w, _ in steps]
    values = [v for _, v in steps]
    assert values[0].startswith("python:3.11-")  # pyproject: requires-python >= 3.11, ruff's target py311

    copy_requirements = steps.index(("COPY", "requirements.txt ."))
    install = next(i for i, (w, v) in enumerate(steps) if w == "RUN" and "-r requirements.txt" in v)
    assert copy_requirements < install < steps.index(("COPY", ". ."))
    assert "pip install" in steps[install][1]

    workdir = values[len(words) - 1 - words[::-1].index("WORKDIR")]
    cmd = json.loads(values[words.index("CMD")])
    _same_command(cmd, workdir, _readme_command("gunicorn")[1])

    uid = values[len(words) - 1 - words[::-1].index("USER")].split(":")[0]
    assert uid not in {"root", "0"}
    assert words.index("USER") > install  # root installs, the application runs without it
    runs = " ".join(v for w, v in steps if w == "RUN")
    created = re.search(rf"useradd [^&]*--uid {uid} [^&]*?(\S+)\s*(?:&&|$)", runs)
    assert created, f"the image creates no user {uid}"
    env = dict(pair.split("=", 1) for w, v in steps if w == "ENV" for pair in shlex.split(v) if "=" in pair)
    # the instance folder (spool, backups, control socket) is the user's own
    assert re.search(rf"install -d -o {created.group(1)} [^&]*-m 700 {re.escape(env['INSTANCE_PATH'])}", runs)
    assert env["FLASK_APP"] == _readme_command("flask")[0]["FLASK_APP"]  # `flask backup` in the container
    assert env["HOST"] == "0.0.0.0"  # noqa: S104 - inside the container; compose publishes on loopback
    assert "/health" in values[words.index("HEALTHCHECK")]

    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {"**/.env", ".venv", "instance", ".git"} <= set(ignored)  # never a secret or a local database


# --- compose ---------------------------------------------------------------------------------------------

def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str):
    if text[0] in "[{\"":
        return json.loads(text)  # flow collections and double-quoted strings are written as JSON
    if text[0] == "'":
        assert text.endswith("'"), text
        return text[1:-1].replace("''", "'")
    assert not text.startswith(("&", "*", "!", "|", ">", "%", "@", "`")), f"outside the subset: {text}"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False, "null": None, "~": None}.get(text, text)


KEY = re.compile(r"([A-Za-z0-9_.-]+):(?:\s+(.*))?$")


def _block(lines: list[tuple[int, str]], pos: int, indent: int):
    if lines[pos][1].startswith("- "):
        items = []
        while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("- "):
            rest = lines[pos][1][2:].strip()
            if KEY.match(rest):  # a mapping as an item: its keys line up after the dash
                lines[pos] = (indent + 2, rest)
                item, pos = _block(lines, pos, indent + 2)
            else:
                item, pos = _scalar(rest), pos + 1
            items.append(item)
        return items, pos
    mapping = {}
    while pos < len(lines) and lines[pos][0] == indent:
        match = KEY.match(lines[pos][1])
        assert match, f"outside the subset: {lines[pos][1]!r}"
        key, rest = match.groups()
        assert key not in mapping, f"{key} twice"
        pos += 1
        if rest:
            mapping[key] = _scalar(rest)
        elif pos < len(lines) and lines[pos][0] > indent:
            mapping[key], pos = _block(lines, pos, lines[pos][0])
        else:
            mapping[key] = None
    assert pos == len(lines) or lines[pos][0] < indent, f"bad indentation at {lines[pos][1]!r}"
    return mapping, pos


def load_yaml_subset(text: str):
    """Block mappings and sequences, plain and quoted scalars, JSON flow collections; nothing else."""
    lines = []
    for raw in text.splitlines():
        assert "\t" not in raw, "tabs in YAML"
        line = _strip_comment(raw)
        if line.strip():
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    value, pos = _block(lines, 0, lines[0][0])
    assert pos == len(lines)
    return value


def test_the_yaml_subset_reader():
    assert load_yaml_subset("a:\n  b: 1\n  c:\n    - x  # note\n    - k: 'v'\n      m: [\"p\", \"\"]\nd:\n") == {
        "a": {"b": 1, "c": ["x", {"k": "v", "m": ["p", ""]}]}, "d": None}
    with pytest.raises(AssertionError):
        load_yaml_subset("a: &anchor 1\n")
    with pytest.raises(AssertionError):
        load_yaml_subset("a:\n    b: 1\n  c: 2\n")


@pytest.fixture(scope="module")
def compose() -> dict:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    parsed = load_yaml_subset(text)
    try:
        import yaml
    except ImportError:
        return parsed
    assert yaml.safe_load(text) == parsed
    return parsed


def test_compose_runs_postgres_redis_and_the_app_each_healthy_and_restarted(compose):
    services = compose["services"]
    assert {"postgres", "redis", "app"} <= set(services)
    for name, service in services.items():
        assert service.get("restart") in RESTARTING, name
    for name in ("postgres", "redis"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, test
        assert re.fullmatch(r"[a-z]+:\d+(-[a-z]+)?", services[name]["image"]), "a pinned major version"

    app = services["app"]
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                 "redis": {"condition": "service_healthy"}}
    assert (DEPLOY / app["build"]["context"]).resolve() == ROOT
    assert app["build"]["dockerfile"] == "deploy/Dockerfile"
    env = app["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://algobridge:${POSTGRES_PASSWORD}@postgres:5432/")
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["AUTO_MIGRATE"] == "true"
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "5000")  # noqa: S104 - the container's own network
    assert all(port.startswith("127.0.0.1:") for port in app["ports"])
    assert int(app["stop_grace_period"].removesuffix("s")) > GRACEFUL_TIMEOUT
    assert any(m.endswith(":/var/lib/algobridge") for m in app["volumes"])


def test_compose_takes_every_secret_from_deploy_env(compose):
    env = compose["services"]["app"]["environment"]
    for name in config.SECRET_NAMES:
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", env[name]), f"{name} must be required from deploy/.env"
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "compose.yaml").read_text(encoding="utf-8")))
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z_]+)=$", example, re.M))
    assert required == listed  # the example names each one, with no value in it


def test_the_feed_is_supervised_once_it_exists(compose):
    if not (ROOT / "feed").is_dir():
        assert "feed" not in compose["services"]
        return
    assert compose["services"]["feed"]["restart"] in RESTARTING
    feed_unit = _unit(DEPLOY / "systemd" / "algobridge-feed.service")
    assert _one(feed_unit["Service"], "Restart") in {"on-failure", "always"}


def test_deploy_readme_names_every_file():
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != "README.md" and not path.name.startswith("."):  # deploy/.env
            assert f"`{path.relative_to(DEPLOY)}`" in text or f"`{path.name}`" in text, path
