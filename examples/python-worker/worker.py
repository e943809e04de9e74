#!/usr/bin/python3
"""A StackShift worker in Python, speaking the Connect stream directly.

It shows the protocol (docs/protocol.md) without an SDK: hello -> welcome,
tasks pushed as slots allow, each write sent as an operation with an id and
answered by a result with that id, heartbeats, and the step memo that lets a
new attempt skip the steps an earlier attempt completed.

It executes one run at a time (one slot) of two jobs: `processOrder`, which has
two steps, and `shipOrder`, which starts `processOrder` as a child run
(step.invoke in the TypeScript SDK), waits for it without holding its slot,
and ships with the child's result. Each step prints what it did, so a test can
see which steps ran:

    READY <worker id>
    START <run id> attempt=<n> memoized=<step ids> traceparent=<...>
    EXECUTED <run id> <step id> <result JSON>
    REPLAYED <run id> <step id> <result JSON>
    SUSPENDED <run id> <step id>
    COMPLETED <run id> <result JSON>
    CRASH <run id> after <step id>

Run `./generate.sh` first (see README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

STUBS_DIR = Path(os.environ.get("STACKSHIFT_STUBS_DIR") or Path(__file__).resolve().parent / "gen")
sys.path.insert(0, str(STUBS_DIR))

import grpc  # noqa: E402

try:
    from stackshift.jobs.v1 import run_pb2
    from stackshift.jobs.v1 import worker_service_pb2 as pb
    from stackshift.jobs.v1 import worker_service_pb2_grpc as pb_grpc
except ModuleNotFoundError:
    sys.exit(f"no generated stubs in {STUBS_DIR}: run ./generate.sh (or set STACKSHIFT_STUBS_DIR)")

SDK_NAME = "stackshift-python-example/0.1.0"
# Tasks carry payloads and step results of up to 1 MiB each, several per
# message: allow more than gRPC's default 4 MiB. Ping every 10 s (the server
# allows every 5 s) to notice a dead connection.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
]
# Exit status of a simulated crash (--crash-after-step).
CRASH_EXIT_CODE = 75
# gRPC status codes that OperationResult.code carries.
OK = grpc.StatusCode.OK.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
# Refusals that no retry can fix: the run fails for good.
FINAL_CODES = {grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}


def say(*words: object) -> None:
    """One line on stdout, flushed at once (tests read it while we run)."""
    print(*words, flush=True)


class StreamClosed(Exception):
    """The Connect stream ended; unanswered operations may or may not have been applied."""


class LeaseLost(Exception):
    """The lease of this attempt is gone (expired, cancelled, handed to another
    worker). The server stored nothing for the write; stop and write nothing more."""


class Suspended(Exception):
    """The run is WAITING (here: for a child run). The lease is over: stop and
    write nothing more; the run is queued again, with the step's outcome in
    the memo, when the child finishes."""

    def __init__(self, step_id: str) -> None:
        super().__init__(f"waiting on step {step_id}")
        self.step_id = step_id


class ChildRunFailed(Exception):
    """A child run failed, was cancelled or timed out (its outcome in the memo
    says which). Replaying the memo raises it again, so retrying cannot help."""

    def __init__(self, step_id: str, outcome: dict[str, Any]) -> None:
        error = outcome.get("error") or {}
        super().__init__(
            f"child run {outcome['childRunId']} of step {step_id} {outcome['status']}: {error.get('name')}: {error.get('message')}"
        )
        self.outcome = outcome


class OperationFailed(Exception):
    """The server refused a write for another reason (see OperationResult.code)."""

    def __init__(self, result: pb.OperationResult) -> None:
        super().__init__(f"gRPC status {result.code}: {result.message}")
        self.code = result.code


class WorkerStream:
    """The Connect stream: requests go through a queue that a gRPC thread
    reads; a reader thread routes what the server sends (welcome, tasks,
    results by operation id, revocations)."""

    def __init__(self, channel: grpc.Channel, hello: pb.WorkerHello) -> None:
        self.welcome: Future[pb.WorkerWelcome] = Future()
        self.tasks: queue.Queue[pb.Task | None] = queue.Queue()
        self.drained = threading.Event()  # the server answered our drain: no task follows
        self._held: set[str] = set()  # run ids being executed
        self._revoked: set[str] = set()  # those of them the server revoked
        self._outgoing: queue.Queue[pb.ConnectRequest | None] = queue.Queue()
        self._pending: dict[int, Future[pb.OperationResult]] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._closed = False
        self._outgoing.put(pb.ConnectRequest(hello=hello))
        # A server that requires keys gets one from STACKSHIFT_API_KEY, as every client sends it.
        api_key = os.environ.get("STACKSHIFT_API_KEY")
        metadata = [("authorization", f"Bearer {api_key}")] if api_key else None
        responses = pb_grpc.WorkerServiceStub(channel).Connect(self._requests(), metadata=metadata)
        self._reader = threading.Thread(target=self._read, args=(responses,), daemon=True)
        self._reader.start()

    def call(self, **operation: Any) -> pb.OperationResult:
        """Sends one operation (complete_step=..., heartbeat=..., ...) and waits for its result."""
        future: Future[pb.OperationResult] = Future()
        with self._lock:
            if self._closed:
                raise StreamClosed("the stream is closed")
            op_id = self._next_id
            self._next_id += 1
            self._pending[op_id] = future
        self._outgoing.put(pb.ConnectRequest(operations=[pb.WorkerOperation(id=op_id, **operation)]))
        return future.result()

    def add_slots(self, count: int) -> None:
        """Tells the server that `count` more runs may be pushed."""
        self._outgoing.put(pb.ConnectRequest(added_slots=count))

    def drain(self) -> None:
        """Asks the server to stop pushing tasks; those already on the wire arrive before `drained` is set."""
        self._outgoing.put(pb.ConnectRequest(drain=True))

    def is_revoked(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._revoked

    def revoke(self, run_ids: list[str]) -> None:
        """Revocations go to every worker; ours are those of runs we hold."""
        with self._lock:
            self._revoked.update(run_id for run_id in run_ids if run_id in self._held)

    def hold(self, run_id: str) -> None:
        with self._lock:
            self._held.add(run_id)

    def unhold(self, run_id: str) -> None:
        with self._lock:
            self._held.discard(run_id)
            self._revoked.discard(run_id)

    def close(self) -> None:
        """Half-closes the stream and waits for the server to end it."""
        self._outgoing.put(None)
        self._reader.join(timeout=10)

    def _requests(self) -> Iterator[pb.ConnectRequest]:
        while (request := self._outgoing.get()) is not None:
            yield request

    def _read(self, responses: Iterator[pb.ConnectResponse]) -> None:
        error: Exception = StreamClosed("the server ended the stream")
        try:
            for response in responses:
                if response.HasField("welcome"):
                    self.welcome.set_result(response.welcome)
                for task in response.tasks:
                    self.tasks.put(task)
                for result in response.results:
                    with self._lock:
                        future = self._pending.pop(result.id, None)
                    if future is not None:
                        future.set_result(result)
                self.revoke([lease.run_id for lease in response.revoked])
                if response.drained:
                    self.drained.set()
        except grpc.RpcError as rpc_error:
            error = StreamClosed(f"stream failed: {rpc_error.code().name} {rpc_error.details()}")
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, {}
        if not self.welcome.done():
            self.welcome.set_exception(error)
        for future in pending.values():
            future.set_exception(error)
        self.tasks.put(None)


class Steps:
    """The steps of one attempt: step ids with the ":n" repeat rule, the memo
    of steps completed by earlier attempts, and CompleteStep for new ones."""

    def __init__(self, stream: WorkerStream, task: pb.Task, crash_after_step: str | None) -> None:
        self._stream = stream
        self._task = task
        self._crash_after_step = crash_after_step
        # Absent result_json means the step returned nothing.
        self._memo = {s.step_id: (s.result_json if s.HasField("result_json") else None) for s in task.steps}
        self._repeats: dict[str, int] = {}
        self.failed_step: tuple[str, int] | None = None

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Returns the memoized result of step `name`, or executes `fn` and stores its result."""
        step_id = self._allocate_id(name)
        run_id = self._task.run_id
        if step_id in self._memo:
            result_json = self._memo[step_id]
            say("REPLAYED", run_id, step_id, result_json)
            return None if result_json is None else json.loads(result_json)
        self._check_lease()
        started = time.monotonic()
        try:
            value = fn()
        except Exception:
            self.failed_step = (step_id, elapsed_ms(started))
            raise
        result_json = json.dumps(value, separators=(",", ":"))
        self._check_lease()
        check(
            self._stream.call(
                complete_step=pb.CompleteStepRequest(
                    run_id=run_id,
                    lease_token=self._task.lease_token,
                    step_id=step_id,
                    result_json=result_json,
                    duration_ms=elapsed_ms(started),
                    kind=run_pb2.STEP_KIND_RUN,
                )
            )
        )
        say("EXECUTED", run_id, step_id, result_json)
        if step_id == self._crash_after_step:
            say("CRASH", run_id, "after", step_id)
            os._exit(CRASH_EXIT_CODE)  # no cleanup, no goodbye: like a killed process
        return json.loads(result_json)

    def invoke(self, name: str, job: str, queue_name: str, payload: Any, timeout_ms: int) -> Any:
        """Starts a child run of `job` and returns its result: from the memo when
        the child has finished (its outcome is {"childRunId", "status", "result"
        or "error"}); otherwise SuspendRun with `invoke` starts the child (once
        per run and step id, however often this is sent) and the run waits.
        Several children started in one SuspendRun resume the run once; this
        example starts one at a time."""
        step_id = self._allocate_id(name)
        run_id = self._task.run_id
        if step_id in self._memo:
            result_json = self._memo[step_id]
            say("REPLAYED", run_id, step_id, result_json)
            outcome = json.loads(result_json or "null")
            if outcome["status"] != "completed":
                raise ChildRunFailed(step_id, outcome)
            return outcome.get("result")
        self._check_lease()
        child = pb.ChildRunRequest(
            step_id=step_id,
            queue=queue_name,
            job=job,
            payload_json=json.dumps(payload, separators=(",", ":")),
            timeout_ms=timeout_ms,
        )
        suspension = pb.SuspendRunRequest(
            run_id=run_id,
            lease_token=self._task.lease_token,
            step_id=step_id,
            invoke=pb.InvokeChildren(children=[child]),
        )
        check(self._stream.call(suspend_run=suspension))
        # An invoke always suspends: the answer's `suspended` is true.
        raise Suspended(step_id)

    def _allocate_id(self, name: str) -> str:
        """The n-th repeat of a name within one attempt is "name:n", as in the TypeScript SDK."""
        seen = self._repeats.get(name, 0)
        self._repeats[name] = seen + 1
        return name if seen == 0 else f"{name}:{seen}"

    def _check_lease(self) -> None:
        if self._stream.is_revoked(self._task.run_id):
            raise LeaseLost(f"run {self._task.run_id} was revoked")


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def check(result: pb.OperationResult) -> pb.OperationResult:
    """Turns a refused operation into an exception."""
    if result.code == OK:
        return result
    if result.code == FAILED_PRECONDITION:
        raise LeaseLost(result.message)
    raise OperationFailed(result)


# --- The job -----------------------------------------------------------------


def process_order(payload: dict[str, Any], step: Steps) -> dict[str, Any]:
    """Reserves stock, then charges the card. Results name this process, so a
    replayed step is recognisable: its result comes from the worker that ran it."""
    order_id = payload["orderId"]
    reservation = step.run("reserve-stock", lambda: {"reservationId": f"res-{order_id}-{os.getpid()}"})
    charge = step.run(
        "charge-card",
        lambda: {"chargeId": f"ch-{order_id}-{os.getpid()}", "amountCents": payload["amountCents"]},
    )
    return {"orderId": order_id, **reservation, **charge}


def ship_order(payload: dict[str, Any], step: Steps) -> dict[str, Any]:
    """Processes the order as a child run, then ships it with the charge the child made."""
    order_id = payload["orderId"]
    processed = step.invoke(
        "process",
        job="processOrder",
        queue_name=payload["queue"],
        payload={"orderId": order_id, "amountCents": payload["amountCents"]},
        timeout_ms=600_000,
    )
    label = step.run("print-label", lambda: {"label": f"label-{order_id}"})
    return {"orderId": order_id, "chargeId": processed["chargeId"], **label}


JOBS: dict[str, Callable[[dict[str, Any], Steps], Any]] = {"processOrder": process_order, "shipOrder": ship_order}


# --- The worker --------------------------------------------------------------


class Worker:
    def __init__(self, stream: WorkerStream, crash_after_step: str | None) -> None:
        self._stream = stream
        self._crash_after_step = crash_after_step
        self._current: pb.Task | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self, max_runs: int) -> None:
        """Executes runs one at a time until `max_runs` have finished (0: until stopped)."""
        welcome = self._stream.welcome.result()
        say("READY", welcome.worker_id)
        threading.Thread(target=self._heartbeat, args=(welcome.heartbeat_interval_ms / 1000,), daemon=True).start()
        finished = 0
        while not self._stopping.is_set():
            try:
                task = self._stream.tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            if task is None:
                raise StreamClosed("the server ended the stream")
            self._execute(task)
            finished += 1
            if max_runs and finished >= max_runs:
                return  # no slot credited: the server pushes nothing more
            self._stream.add_slots(1)
        # Stopped while a slot was credited: tasks may still be on the wire. Hand
        # back every one that arrives before the server confirms the drain.
        self._stream.drain()
        while not (self._stream.drained.is_set() and self._stream.tasks.empty()):
            try:
                task = self._stream.tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            if task is None:
                break  # the stream ended
            self._stream.call(release_run=pb.ReleaseRunRequest(run_id=task.run_id, lease_token=task.lease_token))

    def _execute(self, task: pb.Task) -> None:
        self._stream.hold(task.run_id)
        self._current = task
        memoized = ",".join(sorted(s.step_id for s in task.steps)) or "-"
        # Parent the attempt's span on this W3C carrier (with OpenTelemetry:
        # TraceContextTextMapPropagator().extract(dict(task.trace_context))).
        traceparent = task.trace_context.get("traceparent", "-")
        say("START", task.run_id, f"attempt={task.attempt}", f"memoized={memoized}", f"traceparent={traceparent}")
        steps = Steps(self._stream, task, self._crash_after_step)
        lease = {"run_id": task.run_id, "lease_token": task.lease_token}
        try:
            handler = JOBS[task.job]
            result = handler(json.loads(task.payload_json), steps)
            result_json = json.dumps(result, separators=(",", ":"))
            check(self._stream.call(complete_run=pb.CompleteRunRequest(**lease, result_json=result_json)))
            say("COMPLETED", task.run_id, result_json)
        except Suspended as suspended:
            say("SUSPENDED", task.run_id, suspended.step_id)
        except LeaseLost as error:
            say("LEASE_LOST", task.run_id, error)
        except StreamClosed:
            raise
        except Exception as error:
            failed_step_id, failed_step_ms = steps.failed_step or ("", 0)
            answer = self._stream.call(
                fail_run=pb.FailRunRequest(
                    **lease,
                    error=run_pb2.RunError(
                        name=type(error).__name__, message=str(error) or repr(error), stack=traceback.format_exc()
                    ),
                    non_retriable=isinstance(error, ChildRunFailed)
                    or (isinstance(error, OperationFailed) and error.code in FINAL_CODES),
                    failed_step_id=failed_step_id,
                    failed_step_duration_ms=failed_step_ms,
                )
            )
            retry = run_pb2.RunStatus.Name(answer.fail_run.status) if answer.code == OK else f"code {answer.code}"
            say("FAILED", task.run_id, f"{type(error).__name__}: {error}", f"-> {retry}")
        finally:
            self._current = None
            self._stream.unhold(task.run_id)

    def _heartbeat(self, interval_s: float) -> None:
        """Extends the lease of the run in hand, every interval the server recommended."""
        while not self._stopping.wait(interval_s):
            task = self._current
            if task is None:
                continue
            lease = pb.LeaseRef(run_id=task.run_id, lease_token=task.lease_token)
            try:
                answer = self._stream.call(heartbeat=pb.HeartbeatRequest(leases=[lease]))
            except StreamClosed:
                return
            if answer.code == OK:
                self._stream.revoke([revoked.run_id for revoked in answer.heartbeat.revoked])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=os.environ.get("STACKSHIFT_ADDRESS", "127.0.0.1:50051"))
    parser.add_argument("--namespace", default="", help='namespace (default: "default")')
    parser.add_argument("--queue", action="append", dest="queues", help="queue to take runs from (repeatable)")
    parser.add_argument("--lease-ms", type=int, default=0, help="lease to ask for, ms (0: the server default)")
    parser.add_argument("--max-runs", type=int, default=0, help="exit after this many runs (0: run until stopped)")
    parser.add_argument(
        "--crash-after-step",
        metavar="STEP_ID",
        help=f"simulate a crash: exit at once (status {CRASH_EXIT_CODE}) after the server stored this step",
    )
    args = parser.parse_args()

    hello = pb.WorkerHello(
        namespace=args.namespace,
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
        queues=args.queues or ["default"],
        jobs=list(JOBS),
        slots=1,
        lease_ms=args.lease_ms,
        sdk=SDK_NAME,
    )
    with grpc.insecure_channel(args.address, options=CHANNEL_OPTIONS) as channel:
        stream = WorkerStream(channel, hello)
        worker = Worker(stream, args.crash_after_step)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: worker.stop())
        try:
            worker.run(args.max_runs)
        except StreamClosed as error:
            sys.exit(f"worker stopped: {error}")
        finally:
            worker.stop()
            stream.close()


if __name__ == "__main__":
    main()
