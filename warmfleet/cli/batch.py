"""`warmfleet run --batch jobs.jsonl`: many jobs through one AsyncClient, a bounded number
in flight, results written as JSON lines as they finish, a progress bar on stderr.

Input: one JSON object per line, ``{"code": "...", "id": "any label", "timeout": 5,
"cpu_time": 5, "memory_mb": 128, "language": "python"}``; only ``code`` is required.
Output: one JSON object per job, in completion order: ``line`` (1-based input line),
``id`` (if given) and every Result field. A line that is not a valid job gets
``status: "invalid"`` and an ``error``, and nothing is enqueued for it.

Ctrl-C: the first stops submitting and waits for the jobs already in flight (they are
running on the fleet); a second abandons them. Either way the output is complete for
every job that finished, and the summary says how many did.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from dispatcher import AsyncClient, InvalidJob
from warmfleet.contract.schema import Status

JOB_FIELDS = ("timeout", "cpu_time", "memory_mb", "language")
EXIT_ALL_OK, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class Summary:
    total: int | None
    submitted: int = 0
    finished: int = 0
    ok: int = 0
    invalid: int = 0
    interrupted: bool = False
    abandoned: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_ALL_OK if self.ok == self.finished and not self.invalid else EXIT_SOME_FAILED

    def describe(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items()))
        of = f" of {self.total}" if self.total is not None else ""
        text = f"{self.finished}{of} jobs finished ({statuses or 'none'})"
        if self.invalid:
            text += f"; {self.invalid} invalid lines"
        if self.interrupted:
            not_run = (self.total - self.submitted - self.invalid) if self.total is not None else None
            text = "interrupted: " + text
            if self.abandoned:
                text += f"; {self.abandoned} abandoned in flight (they may still run on the fleet)"
            if not_run:
                text += f"; {not_run} not submitted"
        return text


def read_specs(lines: TextIO) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, job spec or None, problem) for every non-blank line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            spec = json.loads(line)
        except ValueError as exc:
            yield number, None, f"not JSON: {exc}"
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("code"), str):
            yield number, None, 'each line must be a JSON object with a "code" string'
            continue
        unknown = set(spec) - {"code", "id", *JOB_FIELDS}
        if unknown:
            yield number, None, f"unknown fields: {', '.join(sorted(unknown))}"
            continue
        yield number, spec, ""


def count_jobs(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


class BatchRun:
    def __init__(
        self, client: AsyncClient, out: TextIO, *, concurrency: int, defaults: dict, progress=None, task=None
    ) -> None:
        self.client = client
        self.out = out
        self.defaults = defaults
        self.progress, self.task = progress, task
        self.slots = asyncio.Semaphore(concurrency)
        self.stop_submitting = asyncio.Event()
        self.abandon = asyncio.Event()
        self.in_flight: set[asyncio.Task] = set()
        self.summary: Summary | None = None

    def interrupt(self) -> None:
        """First Ctrl-C: submit nothing more, finish what runs. Second: abandon it."""
        if self.stop_submitting.is_set():
            self.abandon.set()
        self.stop_submitting.set()
        if self.progress is not None:
            msg = "abandoning jobs in flight" if self.abandon.is_set() else "stopping: finishing jobs in flight (Ctrl-C again to abandon)"
            self.progress.console.print(f"warmfleet: {msg}")

    async def run(self, specs: Iterator[tuple[int, dict | None, str]], total: int | None) -> Summary:
        self.summary = s = Summary(total=total)
        stopped_early = True
        for number, spec, problem in specs:
            if not await self._take_slot():
                break
            if spec is None:
                self._write({"line": number, "status": "invalid", "error": problem})
                s.invalid += 1
                self.slots.release()
                self._advance()
                continue
            kwargs = {**self.defaults, **{k: spec[k] for k in JOB_FIELDS if k in spec}}
            try:
                job_id = await self.client.submit(spec["code"], **kwargs)
            except InvalidJob as exc:
                self._write({"line": number, **({"id": spec["id"]} if "id" in spec else {}), "status": "invalid", "error": str(exc)})
                s.invalid += 1
                self.slots.release()
                self._advance()
                continue
            s.submitted += 1
            task = asyncio.create_task(self._collect(number, spec.get("id"), job_id))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        else:
            stopped_early = False
        if self.in_flight:
            abandon = asyncio.create_task(self.abandon.wait())
            while self.in_flight and not self.abandon.is_set():
                await asyncio.wait([*self.in_flight, abandon], return_when=asyncio.FIRST_COMPLETED)
            abandon.cancel()
            s.abandoned = len(self.in_flight)
            for task in list(self.in_flight):
                task.cancel()
            await asyncio.gather(*self.in_flight, return_exceptions=True)
        s.interrupted = stopped_early or s.abandoned > 0
        return s

    async def _take_slot(self) -> bool:
        """Wait for room in flight; False if Ctrl-C came first."""
        if self.stop_submitting.is_set():
            return False
        acquire = asyncio.create_task(self.slots.acquire())
        stop = asyncio.create_task(self.stop_submitting.wait())
        await asyncio.wait([acquire, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if acquire.done() and not self.stop_submitting.is_set():
            return True
        if acquire.done():
            self.slots.release()
        acquire.cancel()
        return False

    async def _collect(self, number: int, label: object, job_id: str) -> None:
        try:
            result = await self.client.wait(job_id)
        finally:
            self.slots.release()
        record = {"line": number, **({"id": label} if label is not None else {}), **result.model_dump(mode="json")}
        self._write(record)
        s = self.summary
        assert s is not None
        s.finished += 1
        s.ok += result.status is Status.OK
        s.by_status[result.status.value] = s.by_status.get(result.status.value, 0) + 1
        self._advance()

    def _write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()  # a crash or Ctrl-C keeps every line written so far

    def _advance(self) -> None:
        if self.progress is not None and self.summary is not None:
            s = self.summary
            self.progress.update(self.task, advance=1, ok=s.ok, failed=s.finished - s.ok + s.invalid)


class NoProgress:
    """The progress bar's stand-in where rich is not installed (a lean client install)."""

    def __enter__(self) -> "NoProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        pass


def make_progress(enabled: bool):
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    except ImportError:  # rich comes with warmfleet[fleet]; the batch runs the same without a bar
        if enabled:
            print("warmfleet run --batch: no progress bar (it needs rich: pip install 'warmfleet[fleet]')",
                  file=sys.stderr)
        return NoProgress()

    return Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok [green]{task.fields[ok]}[/] not ok [red]{task.fields[failed]}[/]"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


async def run_batch(
    path: str,
    out: TextIO,
    *,
    redis_url: str | None,
    pool: str,
    concurrency: int,
    defaults: dict,
    show_progress: bool,
) -> Summary:
    total = count_jobs(path) if path != "-" else None
    progress = make_progress(show_progress)
    loop = asyncio.get_running_loop()
    source = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        async with AsyncClient(redis_url, pool=pool) as client:
            with progress:
                task = progress.add_task("jobs", total=total, ok=0, failed=0)
                batch = BatchRun(client, out, concurrency=concurrency, defaults=defaults, progress=progress, task=task)
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, batch.interrupt)
                try:
                    return await batch.run(read_specs(source), total)
                finally:
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(sig)
    finally:
        if source is not sys.stdin:
            source.close()


def main(args) -> int:
    """Entry point from `warmfleet run --batch`."""
    from dispatcher import NoFleetConfigured

    defaults = {"timeout": args.timeout, "cpu_time": args.cpu_time, "memory_mb": args.memory_mb}
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        summary = asyncio.run(
            run_batch(
                args.batch, out, redis_url=args.redis_url, pool=args.pool, concurrency=args.concurrency,
                defaults=defaults, show_progress=not args.no_progress,
            )
        )
    except (NoFleetConfigured, OSError) as exc:
        print(f"warmfleet run --batch: {exc}", file=sys.stderr)
        return 2
    finally:
        if out is not sys.stdout:
            out.close()
    where = f" (results in {args.output})" if args.output else ""
    print(f"warmfleet: {summary.describe()}{where}", file=sys.stderr, flush=True)
    return summary.exit_code()
