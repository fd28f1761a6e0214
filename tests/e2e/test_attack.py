"""Proof under attack: 16 clients mixing good, bad, huge and slow uploads against a real server (small limits).

Every request is answered, each kind only with the statuses it allows (or 503), and the server's peak memory
stays within the documented bound (app.inference.memory.memory_bound_bytes). Figures with more clients: README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.attack import ATTACK_SETTINGS, bound_mib, make_kinds, run_attack
from tests.conftest import FIXTURES, TINY_SPEC
from tests.server_process import running_server


@pytest.mark.slow
def test_mixed_hostile_load_is_answered_within_the_memory_bound(tiny_checkpoint: Path) -> None:
    kinds = make_kinds((FIXTURES / "00000075_000.png").read_bytes())
    with running_server(tiny_checkpoint, **ATTACK_SETTINGS) as server:
        result = run_attack(server.url, server.process.pid, kinds, clients=16, rounds=len(kinds))
    assert result["lost"] == []
    assert result["unexpected"] == {}
    answered = sum(sum(counts.values()) for counts in result["statuses"].values())
    assert answered == 16 * len(kinds)
    for kind in kinds:  # every kind was tried, and what it is meant to get happened at least once
        assert any(status in kind.allowed for status in result["statuses"][kind.name]), kind.name
    assert result["peak_rss_mib"] <= bound_mib(result["idle_rss_mib"], TINY_SPEC.image_size)
