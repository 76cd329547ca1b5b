"""How a queue consumer settles what it handed over: ``ack(token)`` / ``nack(token,
requeue)`` of the broker session, and an ack future shared by several messages (one
broker command acking a batch) counted once per message when it is done."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from portico_rx.pipeline.delivery import Claim, Delivery, claim_current
from portico_rx.sources.queues.consumer import Consumer, QueueSource
from portico_rx.sources.queues.message import QueueMessage


class FakeBroker:
    """A session emitting ``count`` messages whose acks share one future per batch."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.acked_tokens: list[Any] = []
        self.nacked: list[tuple[Any, bool]] = []
        self.batch: asyncio.Future[None] | None = None
        self.deliveries: list[Delivery] = []
        self.consumer: Consumer | None = None

    def ack(self, token: Any) -> asyncio.Future[None]:
        self.acked_tokens.append(token)
        if self.batch is None:
            self.batch = asyncio.get_running_loop().create_future()
        return self.batch

    async def nack(self, token: Any, requeue: bool) -> None:
        self.nacked.append((token, requeue))

    async def session(self, consumer: Consumer) -> None:
        self.consumer = consumer
        consumer.connected()
        for n in range(self.count):
            message = QueueMessage(
                broker="fake", destination="q", subject="q", message_id=f"m-{n}", body=b"{}"
            )
            delivery = consumer.emit(
                message, ack=self.ack, nack=self.nack, token=("tag", n), idempotency_key=None
            )
            assert delivery is not None
            self.deliveries.append(delivery)
        await consumer.stopping.wait()
        await consumer.drain_if_stopping()

    def source(self) -> QueueSource:
        return QueueSource(
            broker="fake",
            destination="q",
            session=self.session,
            describe="fake queue 'q'",
            max_in_flight=self.count,
            drain_timeout=1,
        )


async def until(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached")


async def test_an_ack_shared_by_a_batch_counts_each_message_once_it_is_done() -> None:
    broker = FakeBroker(5)
    source = broker.source()
    subscription = source.subscribe(lambda _message: None)  # each event dropped: acked
    await until(lambda: len(broker.acked_tokens) == 5)
    assert broker.acked_tokens == [("tag", n) for n in range(5)]
    status = source.status
    assert (status.received, status.in_flight, status.acked) == (5, 5, 0)  # not yet done
    assert broker.batch is not None
    broker.batch.set_result(None)
    outcomes = await asyncio.gather(*(d.wait_settled() for d in broker.deliveries))
    assert [outcome.value for outcome in outcomes] == ["dropped"] * 5
    assert (status.in_flight, status.acked, status.settle_errors) == (0, 5, 0)
    assert broker.consumer is not None and not broker.consumer.unsettled
    subscription.dispose()
    await source.wait_closed(timeout=5)


async def test_a_failed_shared_ack_is_an_error_per_message_and_frees_their_slots() -> None:
    broker = FakeBroker(3)
    source = broker.source()
    with capture_logs() as logs:
        subscription = source.subscribe(lambda _message: None)
        await until(lambda: broker.batch is not None and len(broker.acked_tokens) == 3)
        assert broker.batch is not None
        broker.batch.set_exception(ConnectionError("broker gone"))
        await until(lambda: source.status.in_flight == 0)
        subscription.dispose()
        await source.wait_closed(timeout=5)
    status = source.status
    assert (status.acked, status.settle_errors) == (0, 3)
    failed = [log for log in logs if log["event"] == "queue_ack_failed"]
    assert [log["message_id"] for log in failed] == ["m-0", "m-1", "m-2"]
    assert all("ConnectionError: broker gone" in log["error"] for log in failed)


async def test_a_failed_message_is_nacked_with_its_token() -> None:
    broker = FakeBroker(2)
    source = broker.source()
    claims: list[Claim] = []

    def hold(_message: QueueMessage) -> None:
        claim = claim_current()
        assert claim is not None
        claims.append(claim)

    subscription = source.subscribe(hold)
    await until(lambda: len(claims) == 2)
    claims[0].resolve(False, requeue=True)
    claims[1].resolve(False, requeue=False)
    await until(lambda: len(broker.nacked) == 2 and source.status.in_flight == 0)
    assert broker.nacked == [(("tag", 0), True), (("tag", 1), False)]
    assert broker.acked_tokens == []
    status = source.status
    assert (status.requeued, status.dead_lettered, status.acked) == (1, 1, 0)
    subscription.dispose()
    await source.wait_closed(timeout=5)
