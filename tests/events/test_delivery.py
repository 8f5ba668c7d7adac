"""Event delivery from the outbox to real HTTP receivers on loopback: routing by SNS topic,
retries with backoff, order per endpoint while a receiver is down, giving up after max_age, and
the events the record activities publish for image states and steps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.builds.model import ExecutionRecord, ImageStateUpdate
from engine.builds.records import RecordActivities
from engine.events import model
from engine.events.delivery import DeliveryPolicy, EventDelivery
from engine.events.endpoints import EndpointsFile, parse
from engine.events.outbox import KIND, publish
from engine.store import Record, Store
from tests.events.receiver import Receiver

TOPIC = "arn:aws:sns:us-east-1:123456789012:builds"
IMAGE = "arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.0.0/1"
FAST = DeliveryPolicy(timeout=2, first_retry=0.2, max_retry=0.5, poll=0.05)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    s.migrate()
    yield s
    s.dispose()


def endpoints(tmp_path: Path, mapping: dict[str, Any]) -> EndpointsFile:
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(mapping))
    return EndpointsFile(path)


def emit(store: Store, n: int, topic: str = TOPIC) -> list[str]:
    ids = []
    with store.transaction(write=True) as tx:
        for i in range(n):
            event = model.image_state_change("123456789012", IMAGE, "BUILDING", {"status": f"S{i}"})
            publish(tx, event, topic)
            ids.append(event["id"])
    return ids


def outbox(store: Store) -> list[Record]:
    with store.transaction() as tx:
        return tx.find(KIND)


def drain_until(delivery: EventDelivery, condition: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "delivery did not finish in time"
        delivery.drain_once()
        time.sleep(0.05)


def test_events_reach_the_topics_endpoints_and_the_catch_all(store: Store, tmp_path: Path) -> None:
    topic_receiver, all_receiver, other = Receiver(), Receiver(), Receiver()
    try:
        eps = endpoints(tmp_path, {TOPIC: [topic_receiver.url], "*": all_receiver.url, f"{TOPIC}-other": other.url})
        delivery = EventDelivery(store, eps, FAST)
        ids = emit(store, 3)
        emit(store, 1, topic="")  # no topic: only the catch-all hears it
        assert delivery.drain_once() == 7
        assert [e["id"] for e in topic_receiver.events] == ids
        assert len(all_receiver.events) == 4 and other.events == []
        event = topic_receiver.events[0]
        assert event["source"] == "aws.imagebuilder" and event["detail-type"] == "EC2 Image Builder Image State Change"
        assert event["account"] == "123456789012" and event["region"] == "us-east-1"
        assert event["resources"] == [IMAGE]
        assert event["detail"] == {"previous-state": {"status": "BUILDING"}, "state": {"status": "S0"}}
        assert topic_receiver.headers[0]["X-Imagebuilder-Event-Id"] == ids[0]
        assert outbox(store) == []
    finally:
        for r in (topic_receiver, all_receiver, other):
            r.stop()


def test_a_failing_receiver_gets_every_event_in_order_after_retries(store: Store, tmp_path: Path) -> None:
    flaky, healthy = Receiver(fail_first=2), Receiver()
    try:
        delivery = EventDelivery(store, endpoints(tmp_path, {TOPIC: [flaky.url, healthy.url]}), FAST)
        ids = emit(store, 3)
        delivery.drain_once()
        # The healthy endpoint is not held up by the failing one.
        assert [e["id"] for e in healthy.events] == ids
        assert flaky.events == [] and flaky.requests == 1  # later events wait behind the first
        pending = outbox(store)[0].body["pending"][flaky.url]
        assert pending["attempts"] == 1 and "500" in pending["lastError"]
        drain_until(delivery, lambda: len(flaky.events) == 3)
        assert [e["id"] for e in flaky.events] == ids
        assert flaky.requests == 5
        assert outbox(store) == []
    finally:
        flaky.stop()
        healthy.stop()


def test_a_receiver_that_is_down_for_a_while_gets_the_events_when_it_is_back(store: Store, tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.stop()  # connection refused from now on, same port later
    try:
        delivery = EventDelivery(store, endpoints(tmp_path, {TOPIC: receiver.url}), FAST)
        ids = emit(store, 2)
        for _ in range(3):
            delivery.drain_once()
            time.sleep(0.3)
        assert len(outbox(store)) == 2
        assert outbox(store)[0].body["pending"][receiver.url]["attempts"] >= 2
        receiver.start()
        drain_until(delivery, lambda: len(receiver.events) == 2)
        assert [e["id"] for e in receiver.events] == ids
    finally:
        receiver.stop()


def test_events_older_than_max_age_are_dropped_with_an_error(store: Store, tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.stop()
    policy = DeliveryPolicy(timeout=1, first_retry=0.05, max_retry=0.05, max_age=0.5, poll=0.05)
    delivery = EventDelivery(store, endpoints(tmp_path, {TOPIC: receiver.url}), policy)
    emit(store, 1)
    drain_until(delivery, lambda: outbox(store) == [], timeout=10)


def test_events_nobody_listens_for_are_not_kept(store: Store, tmp_path: Path) -> None:
    delivery = EventDelivery(store, endpoints(tmp_path, {f"{TOPIC}-other": "http://127.0.0.1:9/x"}), FAST)
    emit(store, 2)
    assert delivery.drain_once() == 0
    assert outbox(store) == []


def test_only_one_worker_delivers_at_a_time(store: Store, tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        eps = endpoints(tmp_path, {TOPIC: receiver.url})
        first, second = EventDelivery(store, eps, FAST), EventDelivery(store, eps, FAST)
        emit(store, 1)
        assert first.drain_once() == 1
        emit(store, 1)
        assert second.drain_once() == 0  # the first holds the lease
        assert first.drain_once() == 1
    finally:
        receiver.stop()


def test_endpoint_files_are_checked() -> None:
    with pytest.raises(ValueError, match="not an SNS topic ARN"):
        parse(json.dumps({"builds": "http://x"}), "f.json")
    with pytest.raises(ValueError, match="not an http:// or https:// URL"):
        parse(json.dumps({TOPIC: ["ftp://x"]}), "f.json")
    with pytest.raises(ValueError, match="not JSON"):
        parse("{", "f.json")
    assert parse(json.dumps({TOPIC: "http://a", "*": ["http://b", "http://a"]}), "f").urls(TOPIC) == (
        "http://a",
        "http://b",
    )


def test_record_activities_publish_image_and_step_events(store: Store, tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        body = {"name": "web", "state": {"status": "PENDING"}, "infrastructureConfiguration": {"snsTopicArn": TOPIC}}
        with store.transaction(write=True) as tx:
            tx.insert(Record(arn=IMAGE, kind="image", account="123456789012", name="web", body=body))
        records = RecordActivities(store)
        records._set_image_state(ImageStateUpdate(IMAGE, "BUILDING"))
        records._set_image_state(ImageStateUpdate(IMAGE, "BUILDING"))  # a retried write is no change
        wf = ExecutionRecord(
            "workflow-execution", "wf-1", IMAGE, "123456789012", {"status": "RUNNING", "type": "BUILD"}
        )
        records._save_execution(wf)
        step = {"name": "Approve", "action": "WaitForAction", "imageBuildVersionArn": IMAGE, "status": "RUNNING"}
        records._save_execution(ExecutionRecord("workflow-step-execution", "step-1", "wf-1", "123456789012", step))
        done = {"status": "COMPLETED", "message": "resumed"}
        records._save_execution(ExecutionRecord("workflow-step-execution", "step-1", "wf-1", "123456789012", done))
        records._set_image_state(ImageStateUpdate(IMAGE, "FAILED", reason="boom"))
        EventDelivery(store, endpoints(tmp_path, {TOPIC: receiver.url}), FAST).drain_once()
        kinds = [(e["detail-type"], e["detail"].get("state", {}).get("status")) for e in receiver.events]
        assert kinds == [
            ("EC2 Image Builder Image State Change", "BUILDING"),
            ("EC2 Image Builder Workflow State Change", "RUNNING"),
            ("EC2 Image Builder Workflow Step State Change", "RUNNING"),
            ("EC2 Image Builder Workflow Step Waiting", None),
            ("EC2 Image Builder Workflow Step State Change", "COMPLETED"),
            ("EC2 Image Builder Image State Change", "FAILED"),
        ]
        waiting = receiver.events[3]["detail"]
        assert waiting == {
            "workflow-execution-id": "wf-1",
            "workflow-step-execution-id": "step-1",
            "workflow-step-name": "Approve",
        }
        completed = receiver.events[4]["detail"]
        assert completed["previous-state"] == {"status": "RUNNING"} and completed["state"]["message"] == "resumed"
        assert completed["workflow-step-name"] == "Approve"  # from the first write, merged
        failed = receiver.events[5]["detail"]
        assert failed == {"previous-state": {"status": "BUILDING"}, "state": {"status": "FAILED", "reason": "boom"}}
    finally:
        receiver.stop()
