"""The chart's allowed venues are the venue registry's (marketpipe/venues.py): the values schema's enum for
`producers.<name>.venue` and the `marketpipe.venues` list the templates check a key-as-venue against."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from marketpipe.venues import VENUES, producer_names
from tests.helm.chart import CHART


def test_values_schema_venue_enum_is_the_registry() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    venue = schema["properties"]["producers"]["additionalProperties"]["properties"]["venue"]
    assert venue["enum"] == producer_names()


def test_template_venue_list_is_the_registry() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'define "marketpipe.venues" -}}\n(.*?)\n', helpers)
    assert match, "marketpipe.venues is not defined in _helpers.tpl"
    assert match.group(1).split() == [v.name for v in VENUES]


def test_every_registry_venue_renders_a_producer(helm_bin: str) -> None:
    from tests.helm.chart import render

    producers = {v.name: {"markets": ["BTC-USD"],
                          "settings": {k.removeprefix("MARKETPIPE_").lower(): "kraken" for k in v.required_env}}
                 for v in VENUES}
    m = render(set_values={"producers": producers})
    for v in VENUES:
        container = m.get("Deployment", f"mp-marketpipe-{v.name}")["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["produce", v.name]


def test_a_venue_added_to_the_registry_reaches_the_chart(helm_bin: str, tmp_path: Path) -> None:
    """`python -m marketpipe.venues --write` (write_derived_files) on a copy of the chart: a new entry becomes
    an allowed venue; before the rewrite the same values are refused."""
    from marketpipe.venues import Venue, write_derived_files
    from tests.helm.chart import HelmError, render

    root = tmp_path / "repo"
    shutil.copytree(CHART, root / "helm" / "marketpipe")
    shutil.copy(CHART.parents[1] / "README.md", root / "README.md")
    chart = root / "helm" / "marketpipe"
    values = {"producers": {"fakex": {"markets": ["BTC-USD"]}}}
    with pytest.raises(HelmError, match='venue "fakex" is not one of'):
        render(set_values=values, chart=chart)
    fake = Venue("fakex", "drift", "producers.drift.settings:DriftSettings", "a venue added for this test")
    assert len(write_derived_files(root, (*VENUES, fake))) == 3
    m = render(set_values=values, chart=chart)
    container = m.get("Deployment", "mp-marketpipe-fakex")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["produce", "fakex"]
    assert "| `fakex` |" in (root / "README.md").read_text()


def test_the_repository_files_are_written_from_the_registry() -> None:
    from marketpipe.venues import write_derived_files

    scratch = Path(tempfile.mkdtemp())
    try:
        for rel in ("README.md", "helm/marketpipe/values.schema.json", "helm/marketpipe/templates/_helpers.tpl"):
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(CHART.parents[1] / rel, scratch / rel)
        assert write_derived_files(scratch) == [], "run: python -m marketpipe.venues --write"
    finally:
        shutil.rmtree(scratch)


def test_ccxt_with_an_exchange_renders_it(helm_bin: str) -> None:
    from tests.helm.chart import render

    m = render(set_values={"producers": {"kraken": {"venue": "ccxt", "markets": ["BTC/USD"],
                                                    "settings": {"exchange": "kraken"}}}})
    assert m.get("ConfigMap", "mp-marketpipe-kraken")["data"]["MARKETPIPE_EXCHANGE"] == "kraken"
    container = m.get("Deployment", "mp-marketpipe-kraken")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["produce", "ccxt"]
