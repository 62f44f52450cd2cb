"""gunicorn's own lines (its error log and access log) are written like ours: the
LOG_FORMAT format, scrubbed, and an access line carries the request id the app echoed."""

import json
import logging
import runpy
from datetime import timedelta
from importlib.resources import files
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from webhooks import gunicorn_logging

# The file `ovbot serve` hands gunicorn: config/gunicorn.conf.py, found as package data.
CONF = files("bot.config") / "gunicorn.conf.py"


@pytest.fixture
def gunicorn_loggers():
    """gunicorn's loggers and the record factory, restored after the test."""
    names = ("gunicorn.error", "gunicorn.access")
    saved = {n: (logging.getLogger(n).propagate, logging.getLogger(n).level) for n in names}
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)
    for name, (propagate, level) in saved.items():
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
            handler.close()
            logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level


def config(tmp_path) -> Config:
    """gunicorn's Config as `ovbot serve` builds it (its -c file), logging to files."""
    cfg = Config()
    for name, value in runpy.run_path(str(CONF)).items():
        if name in cfg.settings:
            cfg.set(name, value)
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    return cfg


def serve_one(cfg: Config, headers: list[tuple[str, str]]) -> None:
    """What gunicorn logs around one request to a URL with a secret in its query string."""
    logger = cfg.logger_class(cfg)
    logger.info("Booting worker for %s", "+254712345678")
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/webhooks/telegram?token=cb-token-0123",
        "PATH_INFO": "/webhooks/telegram",
        "QUERY_STRING": "token=cb-token-0123",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    response = SimpleNamespace(status="200 OK", sent=2, headers=headers)
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=5))
    for handler in [*logger.error_log.handlers, *logger.access_log.handlers]:
        handler.flush()


def test_the_config_names_the_logger(tmp_path, gunicorn_loggers):
    assert Config().logger_class is not gunicorn_logging.Logger
    assert config(tmp_path).logger_class is gunicorn_logging.Logger


def test_json_lines_with_the_request_id(tmp_path, monkeypatch, gunicorn_loggers):
    monkeypatch.setenv("LOG_FORMAT", "json")
    gunicorn_logging.scrub_logs()
    cfg = config(tmp_path)
    serve_one(cfg, [("Content-Length", "2"), ("X-Request-ID", "rid-7")])
    (error,) = [json.loads(x) for x in (tmp_path / "error.log").read_text().splitlines()]
    (access,) = [json.loads(x) for x in (tmp_path / "access.log").read_text().splitlines()]
    assert error["logger"] == "gunicorn.error" and error["message"].endswith("+254*****678")
    assert "request_id" not in error  # not in a request
    assert access["logger"] == "gunicorn.access" and access["request_id"] == "rid-7"
    assert access["message"] == '10.0.0.7 "POST /webhooks/telegram HTTP/1.1" 200 2 0.005000s'


def test_text_lines_are_ours_too(tmp_path, monkeypatch, gunicorn_loggers):
    monkeypatch.setenv("LOG_FORMAT", "text")
    gunicorn_logging.scrub_logs()
    serve_one(config(tmp_path), [])  # no id on the response: none on the line
    (error,) = (tmp_path / "error.log").read_text().splitlines()
    (access,) = (tmp_path / "access.log").read_text().splitlines()
    assert " INFO gunicorn.error: Booting worker for +254*****678" in error
    assert access.endswith(
        ' INFO gunicorn.access: 10.0.0.7 "POST /webhooks/telegram HTTP/1.1" 200 2 0.005000s'
    )
    assert "cb-token-0123" not in access and "712345678" not in error
