"""gunicorn.conf.py: the server's settings come from the environment, parsed strictly, and every
name gunicorn reads from the file is a valid setting (the multi-worker behaviour itself is tested
against a real gunicorn in tests/scale/)."""

from __future__ import annotations

import os
import runpy

import pytest
from gunicorn.config import Config

import config

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gunicorn.conf.py")


def _load(monkeypatch, **env: str) -> dict:
    for name in config.SERVER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(CONF)


def _as_gunicorn_reads_it(conf: dict) -> Config:
    cfg = Config()
    for name, value in conf.items():
        if name in cfg.settings:
            cfg.set(name, value)  # raises on a value gunicorn does not accept
    return cfg


def test_defaults(monkeypatch):
    cfg = _as_gunicorn_reads_it(_load(monkeypatch))
    assert cfg.bind == ["127.0.0.1:5000"]
    assert (cfg.workers, cfg.threads, cfg.worker_class_str) == (1, 8, "gthread")
    assert (cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (30, 30, 5)
    assert cfg.preload_app is True
    assert cfg.wsgi_app == "app:create_app()"


def test_settings_from_the_environment(monkeypatch):
    cfg = _as_gunicorn_reads_it(_load(monkeypatch, WEB_WORKERS="4", WEB_THREADS="2", WEB_TIMEOUT="60",
                                      WEB_GRACEFUL_TIMEOUT="45", WEB_KEEPALIVE="2",
                                      WEB_BIND="0.0.0.0:8000, unix:/run/algobridge.sock"))
    assert cfg.bind == ["0.0.0.0:8000", "unix:/run/algobridge.sock"]
    assert (cfg.workers, cfg.threads, cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (4, 2, 60, 45, 2)
    assert _as_gunicorn_reads_it(_load(monkeypatch, HOST="10.0.0.5", PORT="8080")).bind == ["10.0.0.5:8080"]


def test_each_instance_has_its_own_control_socket(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    assert _as_gunicorn_reads_it(_load(monkeypatch)).control_socket == str(tmp_path / "gunicorn.ctl")


def test_a_malformed_setting_names_the_variable(monkeypatch):
    with pytest.raises(config.ConfigError, match="WEB_WORKERS"):
        _load(monkeypatch, WEB_WORKERS="four")
    with pytest.raises(config.ConfigError, match="WEB_GRACEFUL_TIMEOUT"):
        _load(monkeypatch, WEB_GRACEFUL_TIMEOUT="0")


def test_the_hooks_are_there(monkeypatch):
    cfg = _as_gunicorn_reads_it(_load(monkeypatch))
    for hook in ("worker_exit", "on_exit", "post_worker_init"):
        assert getattr(cfg, hook).__module__ != "gunicorn.config", f"{hook} is gunicorn's default"


def test_the_master_stops_its_scheduler_and_each_worker_runs_its_own(monkeypatch, tmp_path):
    """when_ready runs in gunicorn's master before it forks: the master's scheduler thread ends
    there (the master only supervises), and a process forked after that starts its own."""
    from types import SimpleNamespace

    from app import create_app

    conf = _load(monkeypatch)
    application = create_app({"INSTANCE_PATH": str(tmp_path), "SCHEDULER_ENABLED": True,
                              "SCHEDULER_INTERVAL": 1, "SAMPLE_CONTRACT": False})
    master_thread = application.extensions["algobridge.scheduler"]
    assert master_thread.is_alive()
    server = SimpleNamespace(cfg=SimpleNamespace(preload_app=True), app=SimpleNamespace(wsgi=lambda: application))
    conf["when_ready"](server)  # gunicorn's arbiter: its config, and the application it preloaded
    master_thread.join(timeout=5)
    assert not master_thread.is_alive()

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker
        status = 1
        try:
            thread = application.extensions["algobridge.scheduler"]
            os.write(write_fd, b"alive" if thread is not master_thread and thread.is_alive() else b"dead")
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert answer == b"alive"
    application.extensions["algobridge.scheduler_stop"].set()
