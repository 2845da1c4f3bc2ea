"""Scrape and read Prometheus text exposition in tests."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Samples = list[tuple[str, dict[str, str], float]]


async def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        text = await r.text()
        assert r.status == 200, text
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one sample named ``name`` whose labels include ``labels`` (0 if none)."""
    found = [v for n, lab, v in samples if n == name and labels.items() <= lab.items()]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else 0.0
