"""The short form of bench/rehearsal.py in `make test`: the production topology of docs/deploy.md
on loopback (nginx, three daphne, two ingest workers, PostgreSQL, Redis under Sentinel, a layer
over two shards), viewers through nginx, and a daphne, an ingest worker and the Redis master
killed in turn: every viewer back, nothing lost or repeated."""

from __future__ import annotations

import pytest

from bench import rehearsal
from tests.sentinel import require_sentinel
from tests.services import missing, port_open, require_nginx, require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_the_production_topology_survives_each_fault_with_nothing_lost_or_repeated():
    require_redis()
    require_sentinel()
    require_nginx()
    if not port_open("127.0.0.1", 5432):
        missing("postgres", "PostgreSQL on 127.0.0.1:5432")
    args = rehearsal.parse_args(["--viewers", "30", "--streams", "3", "--settle", "2"])
    text, result = rehearsal.run(args)
    print(text)
    assert result["never_live"] == 0, text
    for fault in result["faults"]:
        assert fault.not_back == 0, text
        assert max(fault.back_after) < rehearsal.BACK_WITHIN_SECONDS, text
    assert result["lost"] == 0 and result["repeated"] == 0, text
    assert result["checked"] == 30, text
