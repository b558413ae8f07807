"""The chart's allowed venues are the venue registry's (marketpipe/venues.py): the values schema's enum for
`producers.<name>.venue` and the `marketpipe.venues` list the templates check a key-as-venue against."""

from __future__ import annotations

import json
import re

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

    producers = {v.name: {"markets": ["BTC-USD"]} for v in VENUES}
    m = render(set_values={"producers": producers})
    for v in VENUES:
        container = m.get("Deployment", f"mp-marketpipe-{v.name}")["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["produce", v.name]
