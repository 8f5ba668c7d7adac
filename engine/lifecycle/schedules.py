"""The daily run of each ENABLED lifecycle policy: one Temporal Schedule per policy.

Image Builder runs a policy once a day "at a time the service chooses"; here the time of day is
spread over the day by a hash of the policy ARN, so many policies do not all start at once. The
schedule skips a run while the previous one of the same policy is still going (one execution
per policy at a time) and catches up at most one missed run (catch-up window one day) after
the system was down. A DISABLED or deleted policy has no schedule.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from engine.lifecycle.model import WORKFLOW_NAME, LifecycleRunRequest
from engine.store import Store
from workers.contracts import CONTROL_QUEUE

DAY = timedelta(days=1)


def schedule_id(policy_arn: str) -> str:
    """'lifecycle/<account>/<policy name>': readable in the Temporal UI and CLI."""
    account, rest = policy_arn.split(":")[4], policy_arn.split(":lifecycle-policy/", 1)[1]
    return f"lifecycle/{account}/{rest}"


def time_of_day(policy_arn: str) -> timedelta:
    """A stable minute of the day for the policy's run."""
    minute = int.from_bytes(hashlib.sha256(policy_arn.encode()).digest()[:4], "big") % (24 * 60)
    return timedelta(minutes=minute)


def daily_schedule(policy_arn: str, account: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            LifecycleRunRequest(account=account, policy_arn=policy_arn),
            id=schedule_id(policy_arn),  # the schedule appends the run's time
            task_queue=CONTROL_QUEUE,
            execution_timeout=timedelta(hours=12),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=DAY, offset=time_of_day(policy_arn))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=DAY),
    )


async def sync_schedule(client: Client, policy_arn: str, account: str, enabled: bool) -> None:
    """Make the policy's schedule match its status: present when ENABLED, absent otherwise."""
    sid = schedule_id(policy_arn)
    if not enabled:
        await delete_schedule(client, policy_arn)
        return
    schedule = daily_schedule(policy_arn, account)
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(replace)


async def delete_schedule(client: Client, policy_arn: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(policy_arn)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def reconcile(client: Client, store: Store) -> int:
    """Give every ENABLED policy its schedule (those made while Temporal was unreachable); the
    number of policies synced."""
    with store.transaction() as tx:
        policies = [(p.arn, p.account) for p in tx.find("lifecycle-policy") if p.body.get("status") == "ENABLED"]
    for arn, account in policies:
        await sync_schedule(client, arn, account, True)
    return len(policies)
