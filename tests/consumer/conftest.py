"""The processors' session fixtures (a shared worker on private prefixed topics, an event writer), reused here
once for every consumer test module: the agreement and example tests compare the library with a real worker."""

from tests.processors.conftest import ready_worker, session_tag, shared_worker, topic_prefix, writer  # noqa: F401
