"""The chart's topic replication defaults are the services' (KafkaClientSettings) and reach the schemas Job
and every service the same way."""

from __future__ import annotations

from marketpipe.settings import KafkaClientSettings
from marketpipe.topics_admin import DEFAULT_MIN_INSYNC_REPLICAS, DEFAULT_REPLICATION
from tests.helm.chart import fullname, render
from tests.helm.test_rendered import env_of

FULL = fullname()


def test_topic_replication_defaults_match_settings_in_services_and_schemas_job(helm_bin: str) -> None:
    defaults = KafkaClientSettings.model_fields
    assert (defaults["topic_replication"].default, defaults["topic_min_insync_replicas"].default) == (
        DEFAULT_REPLICATION, DEFAULT_MIN_INSYNC_REPLICAS) == (3, 2)
    m = render()
    want = {"MARKETPIPE_TOPIC_REPLICATION": "3", "MARKETPIPE_TOPIC_MIN_INSYNC_REPLICAS": "2"}
    for obj in (m.get("Job", f"{FULL}-schemas"), *m.of_kind("Deployment"), *m.of_kind("StatefulSet")):
        env = env_of(m, obj)
        assert {k: env.get(k) for k in want} == want, obj["metadata"]["name"]
    changed = render(set_values={"topics.replication": 5, "topics.minInsyncReplicas": 3})
    env = env_of(changed, changed.get("Job", f"{FULL}-schemas"))
    assert (env["MARKETPIPE_TOPIC_REPLICATION"], env["MARKETPIPE_TOPIC_MIN_INSYNC_REPLICAS"]) == ("5", "3")
