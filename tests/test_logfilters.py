"""The log's filters: one line per event, a flood of one warning held back and then counted."""

from __future__ import annotations

import io
import logging

import redis

from livecharts.logfilters import OneLine, Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_logger(*filters: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for item in filters:
        handler.addFilter(item)
    logger = logging.getLogger(f"test.logfilters.{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_a_redis_outage_is_one_line_naming_the_error():
    logger, out = make_logger(OneLine())
    try:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    except redis.exceptions.ConnectionError:
        logger.exception("fan-out hub: layer receive failed; retrying in %.1f s", 0.1)
    text = out.getvalue()
    assert text.count("\n") == 1, text
    assert "retrying in 0.1 s (ConnectionError: Error 111" in text


def test_a_bug_keeps_its_traceback():
    logger, out = make_logger(OneLine())
    try:
        raise KeyError("stream")
    except KeyError:
        logger.exception("could not dispatch")
    assert "Traceback" in out.getvalue()


def test_a_disallowed_host_is_one_line():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(OneLine())
    logger = logging.getLogger("django.security.DisallowedHost")
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        try:
            raise ValueError("Invalid HTTP_HOST header: 'evil.example'.")
        except ValueError as error:
            logger.error(str(error), exc_info=error)
    finally:
        logger.handlers, logger.propagate = saved
    assert out.getvalue() == "Invalid HTTP_HOST header: 'evil.example'.\n"


def test_repeats_of_one_warning_are_held_back_then_counted():
    clock = Clock()
    logger, out = make_logger(Repeats(seconds=10, clock=clock))
    for _ in range(132):
        logger.error("history: Redis unreachable at %s", "127.0.0.1:6379")
        clock.now += 0.01
    assert out.getvalue().count("\n") == 1
    clock.now += 10
    logger.error("history: Redis unreachable at %s", "127.0.0.1:6379")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith("(and 131 more like it in the last 10 s)")


def test_other_warnings_and_info_lines_pass():
    clock = Clock()
    logger, out = make_logger(Repeats(seconds=10, clock=clock))
    logger.error("one thing")
    logger.error("another thing")
    for _ in range(3):
        logger.info("ingest: stream %s started", "x")
    assert out.getvalue().count("\n") == 5


def test_daphne_says_only_that_it_listens():
    from livecharts.logfilters import ListeningOnly

    logger, out = make_logger()
    logger.addFilter(ListeningOnly())
    logger.info("HTTP/2 support not enabled (install the http2 and tls Twisted extras)")
    logger.info("Configuring endpoint tcp:port=8001:interface=127.0.0.1")
    logger.info("Listening on TCP address %s:%s", "127.0.0.1", 8001)
    logger.critical("Listen failure: Couldn't listen on 127.0.0.1:8001")
    assert out.getvalue().splitlines() == [
        "INFO " + logger.name + ": Listening on TCP address 127.0.0.1:8001",
        "CRITICAL " + logger.name + ": Listen failure: Couldn't listen on 127.0.0.1:8001",
    ]
