"""The one URL redactor: a password never appears in what portico_rx shows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico_rx import sources
from portico_rx.adapters.job_queue.server_link import ServerLink
from portico_rx.errors import ConfigurationError, TriggerStartError
from portico_rx.url_redaction import redact_url

names = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)
secrets = st.text(
    st.characters(codec="ascii", categories=["L", "N", "P"], exclude_characters="@/?#,'\"&;"),
    min_size=6,
    max_size=16,
).filter(lambda s: s != "***")

SCHEMES = ["amqp", "amqps", "nats", "redis", "rediss", "postgresql", "postgresql+asyncpg"]


@given(st.sampled_from(SCHEMES), names, secrets, st.integers(1, 65535))
def test_user_and_password_urls_keep_the_user_and_hide_the_password(
    scheme: str, user: str, password: str, port: int
) -> None:
    url = f"{scheme}://{user}:{password}@host.example:{port}/path"
    shown = redact_url(url)
    assert f":{password}@" not in shown
    assert shown == f"{scheme}://{user}:***@host.example:{port}/path"


@given(secrets, st.integers(1, 65535))
def test_password_only_redis_urls_hide_the_password(password: str, port: int) -> None:
    assert redact_url(f"redis://:{password}@cache:{port}/0") == f"redis://:***@cache:{port}/0"


@given(names, secrets)
def test_every_server_of_a_nats_list_is_redacted(user: str, password: str) -> None:
    url = f"nats://{user}:{password}@n1:4222,nats://{user}:{password}@n2:4222"
    assert redact_url(url) == f"nats://{user}:***@n1:4222,nats://{user}:***@n2:4222"


def test_a_nats_token_is_a_secret() -> None:
    assert redact_url("nats://s3cr3t-token@127.0.0.1:4222") == "nats://***@127.0.0.1:4222"


@pytest.mark.parametrize(
    "dsn, shown",
    [
        (
            "host=db user=app password=s3cret dbname=jobs",
            "host=db user=app password=*** dbname=jobs",
        ),
        ("host=db password='two words' dbname=jobs", "host=db password=*** dbname=jobs"),
        ("redis://cache:6379/0?password=s3cret&db=1", "redis://cache:6379/0?password=***&db=1"),
        ("postgresql://app:s3cret@[::1]:5432/jobs", "postgresql://app:***@[::1]:5432/jobs"),
        ("redis://:p@ss@cache", "redis://:***@cache"),
    ],
)
def test_keyword_dsns_ipv6_and_at_signs_in_passwords(dsn: str, shown: str) -> None:
    assert redact_url(dsn) == shown


@pytest.mark.parametrize(
    "url",
    [
        "amqp://127.0.0.1:5672/",
        "amqp://guest@127.0.0.1/vhost",
        "nats://127.0.0.1:4222",
        "redis://127.0.0.1:6379/0",
        "postgresql://app@db.internal/jobs",
        "sqlite+aiosqlite:///app.db",
        "unix:///run/redis.sock",
    ],
)
def test_urls_without_a_password_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_a_url_inside_a_message_is_redacted() -> None:
    message = "cannot reach amqp://app:s3cret@mq:5672/ (connection refused)"
    assert redact_url(message) == "cannot reach amqp://app:***@mq:5672/ (connection refused)"


def test_queue_sources_describe_themselves_without_the_password() -> None:
    described = [
        sources.rabbitmq("amqp://app:s3cret@127.0.0.1:5672/", "orders").describe,
        sources.redis_stream("redis://:s3cret@127.0.0.1:6379/0", "s", "g", "c").describe,
        sources.nats("nats://app:s3cret@127.0.0.1:4222", "orders.created").describe,
    ]
    for text in described:
        assert "s3cret" not in text and "***" in text


def test_configuration_errors_do_not_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as error:
        sources.nats("http://app:s3cret@127.0.0.1:4222", "orders.created")
    assert "s3cret" not in str(error.value) and "app:***@" in str(error.value)


def test_job_store_health_shows_the_redacted_url() -> None:
    link = ServerLink("postgresql://app:s3cret@db:5432/jobs", "PostgreSQL", (OSError,))
    assert link.health()["url"] == "postgresql://app:***@db:5432/jobs"


@pytest.mark.parametrize(
    "source",
    [
        lambda: sources.rabbitmq("amqp://app:s3cret@127.0.0.1:1/", "orders"),
        lambda: sources.redis_stream("redis://:s3cret@127.0.0.1:1/0", "s", "g", "c"),
        lambda: sources.nats("nats://app:s3cret@127.0.0.1:1", "orders.created"),
    ],
    ids=["rabbitmq", "redis", "nats"],
)
async def test_an_unreachable_broker_is_named_without_the_password(source: Any) -> None:
    with pytest.raises(TriggerStartError) as error:
        await source().check(timeout=5)
    assert "s3cret" not in str(error.value) and "***@127.0.0.1:1" in str(error.value)
