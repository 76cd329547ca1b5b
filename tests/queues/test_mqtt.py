"""MQTT: messages become jobs, PUBACK after create, persistent session, bad ones logged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.mqtt_trigger import MqttTrigger
from portico_rx.testing import RecordingJobCreator
from tests.conftest import FlakyService

from .conftest import eventually, publish_mqtt

pytestmark = pytest.mark.mqtt


def envelope(event_type: str, **payload: Any) -> bytes:
    return json.dumps({"event_type": event_type, "payload": payload}).encode()


async def test_messages_become_jobs_bad_ones_are_counted_and_republished(
    unique: str, mqtt_sessions: list[str]
) -> None:
    topic = f"portico/{unique}/events"
    dead_topic = f"portico/{unique}/dead"
    mqtt_sessions.extend([f"t-{unique}", f"watch-{unique}"])
    dead: list[Any] = []
    watcher = sources.mqtt("127.0.0.1", dead_topic, client_id=f"watch-{unique}")
    watching = watcher.subscribe(dead.append)
    assert await watcher.wait_connected()
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = MqttTrigger(
        service,
        "127.0.0.1",
        topic,
        {"alarm.raised": "alarm.handle"},
        client_id=f"t-{unique}",
        dead_letter_topic=dead_topic,
    )
    await trigger.start()
    good = {"event_type": "alarm.raised", "payload": {"s": 1}, "queue": "alarms", "priority": 7}
    await publish_mqtt(topic, json.dumps(good).encode(), "a-1")
    await publish_mqtt(topic, b"garbage", "a-2")
    await publish_mqtt(topic, envelope("alarm.cleared"), "a-3")
    await eventually(lambda: trigger.source.status.dead_lettered == 2 and len(dead) == 2)
    await eventually(lambda: trigger.get_health().jobs_created_count == 1)
    await trigger.stop()
    watching.dispose()
    await watcher.wait_closed(timeout=10)
    [job] = await service.list_jobs()
    assert (job.job_type, job.payload, job.queue_name, job.priority) == (
        "alarm.handle",
        {"s": 1},
        "alarms",
        7,
    )
    assert job.idempotency_key == f"mqtt:{topic}:alarm.handle:{topic}/a-1"
    assert {m.headers["message-id"] for m in dead} == {"a-2", "a-3"}
    assert dead[0].headers["dead-letter-of"] == topic
    assert {d.event_id for d in trigger.dead_letters} == {"a-2", "a-3"}
    assert trigger.get_health().dead_lettered_count == 2


async def test_persistent_session_keeps_messages_published_while_down(
    unique: str, mqtt_sessions: list[str]
) -> None:
    """Stop the trigger, publish, start again: the broker kept the messages."""
    topic = f"portico/{unique}/persist"
    client_id = f"p-{unique}"
    mqtt_sessions.append(client_id)
    creator = RecordingJobCreator()

    def trigger() -> MqttTrigger:
        return MqttTrigger(creator, "127.0.0.1", topic, {"e": "job.e"}, client_id=client_id)

    first = trigger()
    async with first:
        await publish_mqtt(topic, envelope("e", n=0), "p-0")
        await eventually(lambda: len(creator.jobs) == 1)
    for n in range(1, 4):
        await publish_mqtt(topic, envelope("e", n=n), f"p-{n}")
    second = trigger()
    async with second:
        await eventually(lambda: len(creator.jobs) == 4)
    assert [j.payload["n"] for j in creator.jobs] == [0, 1, 2, 3]


async def test_message_unacked_at_stop_comes_back_and_makes_one_job(
    unique: str, mqtt_sessions: list[str]
) -> None:
    """A job creation still running when stop gives up leaves the message unacked; the
    next session gets it again and its job is created once."""
    topic = f"portico/{unique}/unacked"
    client_id = f"u-{unique}"
    mqtt_sessions.append(client_id)
    never = asyncio.Event()

    class Stuck(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await never.wait()
            raise AssertionError("unreachable")

    first = MqttTrigger(
        Stuck(), "127.0.0.1", topic, {"e": "job.e"}, client_id=client_id, stop_timeout=0.1
    )
    await first.start()
    await publish_mqtt(topic, envelope("e", n=1), "u-1")
    await eventually(lambda: first.source.status.in_flight == 1)
    await first.stop()
    creator = RecordingJobCreator()
    second = MqttTrigger(creator, "127.0.0.1", topic, {"e": "job.e"}, client_id=client_id)
    async with second:
        await eventually(lambda: creator.jobs)
        await asyncio.sleep(0.2)
    assert [j.payload for j in creator.jobs] == [{"n": 1}]


async def test_receive_maximum_bounds_messages_in_flight(
    unique: str, mqtt_sessions: list[str]
) -> None:
    topic = f"portico/{unique}/slow"
    client_id = f"s-{unique}"
    mqtt_sessions.append(client_id)
    release = asyncio.Event()

    class Blocking(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await release.wait()
            return await super().create_job(*args, **kwargs)

    creator = Blocking()
    trigger = MqttTrigger(
        creator, "127.0.0.1", topic, {"e": "job.e"}, client_id=client_id, max_in_flight=3
    )
    async with trigger:
        for n in range(20):
            await publish_mqtt(topic, envelope("e", n=n), f"s-{n}")
        await eventually(lambda: trigger.source.status.received == 3)
        await asyncio.sleep(0.3)
        assert trigger.source.status.received == 3
        release.set()
        await eventually(lambda: len(creator.jobs) == 20)
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(20))


async def test_shared_subscription_splits_the_work(unique: str, mqtt_sessions: list[str]) -> None:
    topic = f"portico/{unique}/shared"
    mqtt_sessions.extend([f"a-{unique}", f"b-{unique}"])
    creator = RecordingJobCreator()
    counts = {"a": 0, "b": 0}

    def make(label: str) -> MqttTrigger:
        class Counting(RecordingJobCreator):
            async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
                counts[label] += 1
                return await creator.create_job(*args, **kwargs)

        return MqttTrigger(
            Counting(),
            "127.0.0.1",
            topic,
            {"e": "job.e"},
            client_id=f"{label}-{unique}",
            shared_group="workers",
        )

    triggers = [make("a"), make("b")]
    for trigger in triggers:
        await trigger.start()
    for n in range(40):
        await publish_mqtt(topic, envelope("e", n=n), f"sh-{n}")
    await eventually(lambda: len(creator.jobs) == 40)
    for trigger in triggers:
        await trigger.stop()
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(40))
    assert counts["a"] + counts["b"] == 40 and min(counts.values()) > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"host": ""}, "host"),
        ({"topic": "$share/g/t"}, "shared_group"),
        ({"qos": 0}, "qos"),
        ({"port": 0}, "port"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"host": "127.0.0.1", "topic": "t"}
    args.update(kwargs)
    with pytest.raises(prx.ConfigurationError, match=match):
        sources.mqtt(**args)


async def test_dead_letters_redrive_from_the_durable_store_not_the_broker(
    unique: str, mqtt_sessions: list[str]
) -> None:
    """MQTT keeps no dead-letter queue: ``redrive_dead_letters`` says so and names the
    durable dead-letter store, whose redrive makes the message's job with its original
    key, once however often it is redriven."""
    topic = f"natsredrive/{unique}/events"
    mqtt_sessions.append(f"natsredrive-{unique}")
    service = FlakyService(MemoryJobQueue())
    source = sources.mqtt(
        "127.0.0.1",
        topic,
        client_id=f"natsredrive-{unique}",
        dead_letter_topic=f"natsredrive/{unique}/dead",
    )
    pipeline = source.pipe(prx.to_job("alarm.handle", payload=lambda m: m.json_body()))
    retry = prx.RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002)
    async with prx.PipelineTrigger(pipeline, service, name="alarms", retry=retry):
        assert await source.wait_connected()
        await publish_mqtt(topic, b'{"s": 1}', "m-1")
        await eventually(lambda: source.status.dead_lettered == 1)
    with pytest.raises(prx.ConfigurationError, match="keeps no queue") as raised:
        await source.redrive_dead_letters()
    assert "JobService.redrive_dead_letter" in str(raised.value)

    service.down = False
    [letter] = await service.list_dead_letters()
    job = await service.redrive_dead_letter(letter.id)
    assert (await service.redrive_dead_letter(letter.id)).id == job.id
    assert [j.id for j in await service.list_jobs()] == [job.id]
    assert job.idempotency_key == f"alarms:alarm.handle:{topic}/m-1"
    assert job.payload == {"s": 1}
