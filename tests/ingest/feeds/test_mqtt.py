"""The mqtt feed against real Mosquitto brokers.

Messages go through the shared broker on 127.0.0.1:1883, each test under its own topic prefix
so runs do not see each other's messages. Passwords, TLS, crashes and restarts need a broker of
the test's own: a private mosquitto on a free port, stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from streams.core.points import Batch, Point
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.mqtt import MAX_PAYLOAD_BYTES, MqttFeed, MqttFeedError
from tests.processes import (
    PortTaken,
    again_if_port_taken_async,
    free_port,
    hold_port,
    port_taken,
    refused_port,
)
from tests.services import lacking, require_mosquitto, require_mosquitto_binary
from tests.waits import wait_until

TIMEOUT = 10
USER, PASSWORD = "livecharts", "s3cret-Broker-pw"


@pytest.fixture
def broker() -> tuple[str, int]:
    return require_mosquitto()


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test alone."""
    return f"livecharts-test/{uuid.uuid4().hex}"


async def publish(
    topic: str,
    *payloads: str | bytes,
    port: int = 1883,
    qos: int = 0,
    retain: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> None:
    async with aiomqtt.Client("127.0.0.1", port, username=username, password=password) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=qos, retain=retain)


@contextlib.asynccontextmanager
async def subscribed(feed: MqttFeed) -> AsyncIterator[AsyncIterator[Batch]]:
    """The feed's batches once it is connected and subscribed (its first, empty batch)."""
    batches = feed.batches()
    try:
        async with asyncio.timeout(TIMEOUT):
            assert await anext(batches) == []
        yield batches
    finally:
        await batches.aclose()


async def take(batches: AsyncIterator[Batch], count: int) -> list[Point]:
    points: list[Point] = []
    async with asyncio.timeout(TIMEOUT):
        while len(points) < count:
            points += await anext(batches)
    return points


async def test_json_payloads_become_points(broker, prefix):
    feed = MqttFeed(
        {
            "host": "127.0.0.1",
            "topics": [f"{prefix}/line3"],
            "extract": {"time": "t", "values": {"temperature": "temp", "humidity": "rh"}},
        }
    )
    async with subscribed(feed) as batches:
        await publish(f"{prefix}/line3", '{"t": 1763000000, "temp": 21.5, "rh": 40}')
        (point,) = await take(batches, 1)
    assert point == Point(t=1763000000.0, values={"temperature": 21.5, "humidity": 40.0})


async def test_bare_numbers_are_payloads_too(broker, prefix):
    feed = MqttFeed({"host": "127.0.0.1", "topics": [f"{prefix}/t"]})
    async with subscribed(feed) as batches:
        before = time.time()
        await publish(f"{prefix}/t", "21.5", "22\n", b" -3.25 \r\n")
        points = await take(batches, 3)
    assert [point.values for point in points] == [{"value": 21.5}, {"value": 22.0}, {"value": -3.25}]
    # No time in a bare number: the point is stamped when it arrives.
    assert all(before <= point.t <= time.time() for point in points)
    assert feed.bad_payloads == 0


async def test_one_series_per_sensor_from_a_topic_level(broker, prefix):
    # livecharts-test/<id>/sensors/<sensor>/temperature: the sensor is level 3.
    feed = MqttFeed(
        {
            "host": "127.0.0.1",
            "topics": [f"{prefix}/sensors/+/temperature"],
            "extract": {"value": "@", "series_from_topic": 3},
        }
    )
    async with subscribed(feed) as batches:
        await publish(f"{prefix}/sensors/kitchen/humidity", "55")  # not matched by the filter
        await publish(f"{prefix}/sensors/kitchen/temperature", "21")
        await publish(f"{prefix}/sensors/garage/temperature", "9.5")
        points = await take(batches, 2)
    assert [point.values for point in points] == [{"kitchen": 21.0}, {"garage": 9.5}]


async def test_hash_filter_takes_every_level_below_it(broker, prefix):
    feed = MqttFeed(
        {
            "host": "127.0.0.1",
            "topics": [f"{prefix}/plant/#"],
            "extract": {"value": "@", "series_from_topic": -1},
        }
    )
    async with subscribed(feed) as batches:
        await publish(f"{prefix}/plant/a", "1")
        await publish(f"{prefix}/plant/b/c", "2")
        await publish(f"{prefix}/plant/d/e/f", "3")
        await publish(f"{prefix}/other/g", "4")  # outside the filter
        await publish(f"{prefix}/plant/h", "5")
        points = await take(batches, 4)
    assert [point.values for point in points] == [{"a": 1.0}, {"c": 2.0}, {"f": 3.0}, {"h": 5.0}]


async def test_qos_1_delivers_every_message_in_order(broker, prefix):
    feed = MqttFeed({"host": "127.0.0.1", "topics": [f"{prefix}/n"], "qos": 1})
    async with subscribed(feed) as batches:
        await publish(f"{prefix}/n", *(str(i) for i in range(200)), qos=1)
        points = await take(batches, 200)
    assert [point.values["value"] for point in points] == [float(i) for i in range(200)]


async def test_garbage_payloads_are_counted_and_skipped(broker, prefix):
    feed = MqttFeed({"host": "127.0.0.1", "topics": [f"{prefix}/t"], "extract": {"value": "temp"}})
    async with subscribed(feed) as batches:
        await publish(
            f"{prefix}/t",
            b"\xff\xfe\x00garbage",  # not UTF-8
            "not json",
            '{"temp": "n/a"}',  # JSON, but no number
            "",  # empty: clears a retained value, not an error
            '{"temp": 3}',
        )
        points = await take(batches, 1)
    assert [point.values for point in points] == [{"value": 3.0}]
    assert feed.bad_payloads == 3


async def test_an_oversize_payload_is_skipped_and_the_feed_goes_on(broker, prefix):
    feed = MqttFeed({"host": "127.0.0.1", "topics": [f"{prefix}/t"]})
    async with subscribed(feed) as batches:
        # Valid JSON (spaces, then a number), only too big.
        await publish(f"{prefix}/t", b" " * MAX_PAYLOAD_BYTES + b"1", "2")
        points = await take(batches, 1)
    assert [point.values for point in points] == [{"value": 2.0}]
    assert feed.bad_payloads == 1


async def test_a_retained_value_arrives_on_subscribe_stamped_on_arrival(broker, prefix):
    topic = f"{prefix}/last"
    await publish(topic, "17", retain=True, qos=1)
    try:
        feed = MqttFeed({"host": "127.0.0.1", "topics": [topic]})
        async with subscribed(feed) as batches:
            before = time.time()
            (point,) = await take(batches, 1)
        assert point.values == {"value": 17.0}
        assert before <= point.t <= time.time()
    finally:
        await publish(topic, "", retain=True, qos=1)  # clear it from the shared broker


async def test_aggregates_are_flushed_without_new_messages(broker, prefix):
    feed = MqttFeed(
        {
            "host": "127.0.0.1",
            "topics": [f"{prefix}/door"],
            "extract": {"series": "opened", "aggregate": {"every": 0.5, "how": "count"}},
        }
    )
    async with subscribed(feed) as batches:
        # Three messages, then silence: the interval must close on the clock alone.
        await publish(f"{prefix}/door", "{}", "{}", "{}")
        counted = 0.0
        # The three may straddle an interval boundary: one point or two.
        while counted < 3:
            counted += sum(point.values["opened"] or 0 for point in await take(batches, 1))
    assert counted == 3


# A private broker: passwords, TLS, crashes and restarts.


class Broker:
    """A mosquitto process of one test, on a free port, with its own config."""

    def __init__(self, workdir: Path, *, tls: tuple[Path, Path] | None = None) -> None:
        self.program = require_mosquitto_binary()
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.started = False
        passwords = workdir / "passwords"
        made = subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD],
            capture_output=True,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        self.settings = [
            "allow_anonymous false",
            f"password_file {passwords}",
            "persistence false",
            # Started as root, mosquitto would switch to the `mosquitto` user, who cannot
            # read the test's files; as anyone else this line is ignored.
            f"user {getpass.getuser()}",
        ]
        if tls is not None:
            cert, key = tls
            self.settings += [f"certfile {cert}", f"keyfile {key}"]
        self.config = workdir / "mosquitto.conf"
        self.write_config()

    def write_config(self) -> None:
        lines = [f"listener {self.port} 127.0.0.1", *self.settings]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, *, attempts: int = 5) -> None:
        """Start mosquitto and wait until it listens. On the first start, a port another process
        took since free_port picked it is swapped for a fresh one; a restart keeps its port."""
        for attempt in range(1, attempts + 1):
            try:
                self._start()
            except PortTaken:
                if self.started or attempt == attempts:
                    raise
                self.port = free_port()
                self.write_config()
            else:
                self.started = True
                return

    def _start(self) -> None:
        path = self.workdir / "mosquitto.log"
        logged = path.stat().st_size if path.exists() else 0
        with path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.program, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=log
            )
        process = self.process

        def listening() -> bool:
            with path.open("rb") as log:
                log.seek(logged)
                text = log.read().decode(errors="replace")
            if process.poll() is not None:
                if port_taken(text):
                    raise PortTaken(text)
                pytest.fail(f"private mosquitto exited:\n{path.read_text()}")
            # Its own word, not an open port: the port may be another process's that took it first.
            return " running\n" in text

        wait_until(
            listening,
            what="the private mosquitto to listen",
            within=TIMEOUT,
            seen=lambda: (self.workdir / "mosquitto.log").read_text(),
        )

    def kill(self) -> None:
        """A crash, not a shutdown: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=TIMEOUT)
        self.process = None


@pytest.fixture
def private_broker(tmp_path) -> Iterator[Broker]:
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def private_feed(broker: Broker, prefix: str, **settings: object) -> MqttFeed:
    return MqttFeed(
        {
            "host": "127.0.0.1",
            "port": broker.port,
            "username": USER,
            "password": PASSWORD,
            "topics": [f"{prefix}/#"],
            **settings,
        }
    )


async def test_right_credentials_are_let_in(private_broker, prefix):
    feed = private_feed(private_broker, prefix)
    async with subscribed(feed) as batches:
        await publish(f"{prefix}/t", "5", port=private_broker.port, username=USER, password=PASSWORD)
        (point,) = await take(batches, 1)
    assert point.values == {"value": 5.0}


@pytest.mark.parametrize("credentials", [{"password": "wrong-pw-123"}, {"username": None, "password": None}])
async def test_wrong_credentials_are_refused_clearly_without_the_password(
    private_broker, prefix, credentials, caplog
):
    # Everything paho and the feed log, down to debug, must be free of the password too.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mqtt")
    feed = private_feed(private_broker, prefix, **credentials)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(MqttFeedError) as refused:
            await anext(feed.batches())
    message = str(refused.value)
    assert f"mqtt://127.0.0.1:{private_broker.port} refused the connection" in message
    assert "Not authorized" in message
    assert "check username and password" in message
    for secret in (PASSWORD, "wrong-pw-123"):
        assert secret not in message
        assert secret not in caplog.text
        assert secret not in feed.describe()


async def test_a_broker_down_at_start_raises(prefix):
    with refused_port() as port:
        feed = MqttFeed({"host": "127.0.0.1", "port": port, "topics": [f"{prefix}/t"]})
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(MqttFeedError, match=f"cannot connect to mqtt://127.0.0.1:{port}: .*refused"):
                await anext(feed.batches())


async def test_the_same_feed_resumes_after_the_broker_crashes_and_restarts(tmp_path, prefix):
    # mosquitto is another program: the test holds its port while it is down, and a run that
    # lost the port all the same (as it went down, or as it came back) runs again afresh.
    await again_if_port_taken_async(
        lambda run: crash_and_restart(Broker(fresh(tmp_path / f"run-{run}")), prefix)
    )


def fresh(directory: Path) -> Path:
    directory.mkdir()
    return directory


async def crash_and_restart(broker: Broker, prefix: str) -> None:
    broker.start()
    try:
        feed = private_feed(broker, prefix)
        auth = {"port": broker.port, "username": USER, "password": PASSWORD}
        async with subscribed(feed) as batches:
            await publish(f"{prefix}/t", "1", **auth)
            assert [point.values for point in await take(batches, 1)] == [{"value": 1.0}]
            broker.kill()
            held = hold_port(broker.port)  # refused meanwhile, and no other process's to take
            # The connection loss ends the generator with an error: the worker's cue to back off.
            async with asyncio.timeout(TIMEOUT):
                with pytest.raises(aiomqtt.MqttError):
                    await anext(batches)

        held.close()
        broker.start()  # same port, as after a broker restart
        # What the worker does next: batches() again on the same Feed instance.
        async with subscribed(feed) as batches:
            await publish(f"{prefix}/t", "2", **auth)
            assert [point.values for point in await take(batches, 1)] == [{"value": 2.0}]
    finally:
        broker.kill()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as small brokers on a LAN often have."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    if made.returncode != 0:
        lacking(f"openssl could not make a test certificate: {made.stderr.decode()[-300:]}")
    return cert, key


@pytest.fixture
def tls_broker(tmp_path, certificate) -> Iterator[Broker]:
    broker = Broker(tmp_path, tls=certificate)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


async def test_tls_to_a_self_signed_broker_with_its_ca_file(tls_broker, certificate):
    feed = private_feed(tls_broker, "tls", tls=True, ca_file=str(certificate[0]))
    async with subscribed(feed):
        pass
    assert feed.describe() == f"mqtts://127.0.0.1:{tls_broker.port}"


async def test_tls_to_a_self_signed_broker_with_tls_insecure(tls_broker):
    feed = private_feed(tls_broker, "tls", tls=True, tls_insecure=True)
    async with subscribed(feed):
        pass


async def test_tls_refuses_a_certificate_it_cannot_verify(tls_broker):
    feed = private_feed(tls_broker, "tls", tls=True)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(MqttFeedError, match="CERTIFICATE_VERIFY_FAILED"):
            await anext(feed.batches())


async def test_a_missing_ca_file_is_named_in_the_error(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    feed = MqttFeed({"host": "127.0.0.1", "topics": ["t"], "tls": True, "ca_file": str(missing)})
    with pytest.raises(MqttFeedError, match=f"cannot read ca_file {missing}"):
        await anext(feed.batches())


# Settings.

GOOD = {"host": "broker.local", "topics": ["sensors/+/temperature"]}


def test_settings_get_their_defaults_and_clean_to_themselves():
    cleaned = MqttFeed.clean_settings(GOOD)
    assert cleaned["port"] == 1883
    assert (cleaned["qos"], cleaned["keepalive"], cleaned["tls"]) == (0, 30, False)
    assert MqttFeed.clean_settings(MqttFeed.settings_json(cleaned)) == cleaned
    with_tls = MqttFeed.clean_settings({**GOOD, "tls": True, "username": "u", "password": "p"})
    assert with_tls["port"] == 8883
    assert MqttFeed.clean_settings(MqttFeed.settings_json(with_tls)) == with_tls


@pytest.mark.parametrize(
    "topic",
    ["a/b", "a/+/c", "+", "#", "a/#", "+/+/#", "/a/", "$SYS/broker/#", "a b/ü"],
)
def test_valid_topic_filters_are_accepted(topic):
    assert MqttFeed.clean_settings({**GOOD, "topics": [topic]})["topics"] == [topic]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"topics": ["a"]}, "host"),
        ({"host": "mqtt://broker.local:1883", "topics": ["a"]}, "host"),
        ({"host": "broker.local"}, "topics"),
        ({**GOOD, "topics": []}, "topics"),
        ({**GOOD, "topics": "a/b"}, "topics"),
        ({**GOOD, "topics": ["a/b+/c"]}, "topics[0]"),
        ({**GOOD, "topics": ["ok", "a/#/c"]}, "topics[1]"),
        ({**GOOD, "topics": ["a/b#"]}, "topics[0]"),
        ({**GOOD, "topics": [""]}, "topics[0]"),
        ({**GOOD, "topics": ["a\x00b"]}, "topics[0]"),
        ({**GOOD, "topics": ["a", "a"]}, "topics[1]"),
        ({**GOOD, "topics": [7]}, "topics[0]"),
        ({**GOOD, "qos": 3}, "qos"),
        ({**GOOD, "qos": "1"}, "qos"),
        ({**GOOD, "qos": True}, "qos"),
        ({**GOOD, "port": 0}, "port"),
        ({**GOOD, "port": 70000}, "port"),
        ({**GOOD, "port": "1883"}, "port"),
        ({**GOOD, "port": 1883.5}, "port"),
        ({**GOOD, "keepalive": 0}, "keepalive"),
        ({**GOOD, "tls": "yes"}, "tls"),
        ({**GOOD, "tls_insecure": True}, "tls_insecure"),
        ({**GOOD, "ca_file": "/etc/ssl/ca.pem"}, "ca_file"),
        ({**GOOD, "tls": True, "ca_file": "ca.pem"}, "ca_file"),
        ({**GOOD, "password": "p"}, "password"),
        ({**GOOD, "client_id": ""}, "client_id"),
        ({**GOOD, "stall_after": 0}, "stall_after"),
        ({**GOOD, "extract": {"series_from_topic": "1"}}, "extract.series_from_topic"),
        ({**GOOD, "retain": True}, "retain"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings, key):
    with pytest.raises(FeedSettingsError) as refused:
        MqttFeed.clean_settings(settings)
    assert refused.value.key == key


@pytest.mark.parametrize("password", [123456789, ["hunter2-xyz"], {"p": "hunter2-xyz"}])
def test_a_password_that_is_not_text_is_refused_without_showing_it(password):
    with pytest.raises(FeedSettingsError) as refused:
        MqttFeed.clean_settings({**GOOD, "username": "u", "password": password})
    assert refused.value.key == "password"
    assert "123456789" not in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_series_known_up_front_come_from_extract():
    assert MqttFeed.series_names({**GOOD, "extract": {"values": {"t": "temp", "h": "rh"}}}) == ["t", "h"]
    assert MqttFeed.series_names({**GOOD, "extract": {"series_from_topic": 1}}) == []
