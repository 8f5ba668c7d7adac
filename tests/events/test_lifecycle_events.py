"""A lifecycle action that changes an image's state publishes the same "Image State Change" event
a build's state change does (it goes to the outbox in the same transaction), and no scan."""

from __future__ import annotations

from pathlib import Path

from engine.events.outbox import KIND as OUTBOX
from engine.lifecycle.activities import LifecycleActivities
from engine.lifecycle.model import ImageAction
from engine.scanning.jobs import JOB_KIND
from engine.store import Record, Store
from workers.blobstore import BlobStore

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/golden/1.0.0/1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:builds"


def test_a_lifecycle_state_change_is_an_event(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    body = {"arn": ARN, "state": {"status": "AVAILABLE"}, "infrastructureConfiguration": {"snsTopicArn": TOPIC}}
    with store.transaction(write=True) as tx:
        tx.insert(Record(arn=ARN, kind="image", account="123456789012", name="golden", version="1.0.0", build=1,
                         body=body))  # fmt: skip
    activities = LifecycleActivities(store, BlobStore(tmp_path / "store"), "127.0.0.1:5000")
    action = ImageAction("lce-1", ARN, "DEPRECATE", "older than 30 days")
    activities._set_image_state(action, "DEPRECATED", set())
    activities._set_image_state(action, "DEPRECATED", set())  # no change, no second event
    with store.transaction() as tx:
        rows = tx.find(OUTBOX)
        scans = tx.find(JOB_KIND)
    store.dispose()
    assert len(rows) == 1
    event = rows[0].body["event"]
    assert rows[0].body["topicArn"] == TOPIC
    assert event["detail-type"] == "EC2 Image Builder Image State Change" and event["resources"] == [ARN]
    assert event["detail"]["previous-state"] == {"status": "AVAILABLE"}
    assert event["detail"]["state"]["status"] == "DEPRECATED" and "lce-1" in event["detail"]["state"]["reason"]
    assert scans == []


def test_a_pipeline_disabled_by_its_failures_is_an_event(tmp_path: Path) -> None:
    from datetime import timedelta

    from engine.pipelines.model import PipelineRunOutcome
    from engine.pipelines.run import PipelineActivities

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    pipeline = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nightly"
    infra = "arn:aws:imagebuilder:us-east-1:123456789012:infrastructure-configuration/builders"
    with store.transaction(write=True) as tx:
        tx.insert(Record(arn=infra, kind="infrastructure-configuration", account="123456789012", name="builders",
                         body={"snsTopicArn": TOPIC}))  # fmt: skip
        tx.insert(Record(arn=pipeline, kind="image-pipeline", account="123456789012", name="nightly",
                         body={"status": "ENABLED", "infrastructureConfigurationArn": infra,
                               "schedule": {"autoDisablePolicy": {"failureCount": 2}}}))  # fmt: skip
    runs = PipelineActivities(store, BlobStore(tmp_path / "store"), "", timedelta(minutes=5))
    for n in (1, 2):
        disabled = runs._record(PipelineRunOutcome(pipeline, f"run-{n}", True, "FAILED", f"{ARN[:-1]}{n}"))
        assert (disabled is not None) == (n == 2)
    with store.transaction() as tx:
        rows = tx.find(OUTBOX)
    store.dispose()
    assert len(rows) == 1 and rows[0].body["topicArn"] == TOPIC
    event = rows[0].body["event"]
    assert event["detail-type"] == "EC2 Image Builder Image Pipeline Automatically Disabled"
    assert event["resources"] == [pipeline, f"{ARN[:-1]}2"]
    assert event["detail"]["consecutive-failures"] == 2
