"""The envelope decoder: whatever the body, a valid job request or an InvalidMessageError
(never another exception, which would not be a clean dead letter)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from portico_rx.adapters.job_trigger.message_envelope import EnvelopeDecoder
from portico_rx.errors import ConfigurationError
from portico_rx.models import JobRequest
from portico_rx.sources.queues import InvalidMessageError, QueueMessage

MAPPING = {"user.created": "email.welcome", "order.placed": "order.process"}


class Welcome(BaseModel):
    user_id: int


decode = EnvelopeDecoder(MAPPING, {"email.welcome": Welcome})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def message(body: bytes, broker: str = "rabbitmq") -> QueueMessage:
    return QueueMessage(broker=broker, destination="q", subject="q", message_id="m-1", body=body)


def assert_valid_request(result: object) -> JobRequest:
    """A request the decoder built without re-validation passes JobRequest's own checks."""
    assert isinstance(result, JobRequest)
    assert JobRequest.model_validate(result.model_dump()) == result
    return result


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_invalid_message(body: bytes) -> None:
    try:
        result = decode(message(body))
    except InvalidMessageError as exc:
        assert "'m-1'" in str(exc)
    else:
        assert_valid_request(result)


@given(
    st.fixed_dictionaries(
        {"event_type": st.sampled_from([*MAPPING, "other"]) | st.text(max_size=10)},
        optional={
            "payload": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
            "queue": st.text(max_size=12) | st.integers(),
            "priority": st.integers(-200, 200) | st.text(max_size=3),
            "extra": json_values,
        },
    )
)
def test_any_json_object_decodes_or_raises_invalid_message(data: dict[str, Any]) -> None:
    try:
        result = decode(message(json.dumps(data).encode()))
    except InvalidMessageError:
        return
    request = assert_valid_request(result)
    assert request.job_type == MAPPING[data["event_type"]]
    if request.job_type == "email.welcome":
        assert isinstance(request.payload["user_id"], int)
    assert "extra" not in data


def test_valid_envelope_maps_every_field() -> None:
    body = {"event_type": "order.placed", "payload": {"o": 1}, "queue": "orders", "priority": 5}
    request = assert_valid_request(decode(message(json.dumps(body).encode())))
    assert (request.job_type, request.payload, request.queue_name, request.priority) == (
        "order.process",
        {"o": 1},
        "orders",
        5,
    )
    assert (request.metadata, request.idempotency_key) == ({}, None)


@pytest.mark.parametrize(
    "body, match",
    [
        (b"\xff", "not utf-8 text"),
        (b"[1]", "not an event envelope"),
        (b'{"event_type": "user.created", "paylod": {}}', "paylod"),
        (b'{"event_type": "nope"}', "not in job_type_mapping"),
        (b'{"event_type": "user.created", "payload": {"user_id": "x"}}', "fails Welcome"),
        (b'{"event_type": "order.placed", "queue": "no spaces"}', "invalid queue_name"),
        (b'{"event_type": "order.placed", "priority": 1000}', "invalid priority 1000"),
        (b'{"event_type": "order.placed", "priority": true}', "priority"),
        (b'{"event_type": "order.placed", "payload": {"x": NaN}}', "payload"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body: bytes, match: str) -> None:
    with pytest.raises(InvalidMessageError, match=match):
        decode(message(body))


def test_drop_returns_none_for_unknown_event_types() -> None:
    dropping = EnvelopeDecoder(MAPPING, unknown_event_type="drop")
    assert dropping(message(b'{"event_type": "nope"}')) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"job_type_mapping": {}}, "job_type_mapping"),
        ({"job_type_mapping": {"": "a.b"}}, "event types"),
        ({"payload_schemas": {"a.b": dict}}, "pydantic"),
        ({"unknown_event_type": "explode"}, "unknown_event_type"),
    ],
)
def test_bad_configuration_names_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"job_type_mapping": {"a": "a.b"}}
    args.update(kwargs)
    with pytest.raises(ConfigurationError, match=match):
        EnvelopeDecoder(**args)


def test_a_new_broker_name_needs_no_edit() -> None:
    """``QueueMessage.broker`` is an open string; errors name whatever broker it is."""
    request = decode(message(b'{"event_type": "order.placed"}', broker="kafka"))
    assert assert_valid_request(request).job_type == "order.process"
    with pytest.raises(InvalidMessageError, match="from kafka 'q'"):
        decode(message(b"nope", broker="kafka"))
    with pytest.raises(ValueError, match="broker"):
        message(b"{}", broker="")
