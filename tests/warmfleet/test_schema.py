import pydantic
import pytest

from executor.lean import verdict
from warmfleet.contract import keys
from warmfleet.contract.messages import RunJob
from warmfleet.contract.schema import FleetLimits, Job, JobError, Result, Status, check_request

LIMITS = FleetLimits()


def ok_request(**over):
    args = dict(language="python", timeout=30.0, cpu_time=10.0, memory_mb=256, limits=LIMITS)
    args.update(over)
    return args


@pytest.mark.parametrize(
    "code, over, message",
    [
        ("", {}, "empty"),
        ("   \n", {}, "empty"),
        (b"print(1)", {}, "must be a str"),
        ("x" * (LIMITS.max_code_bytes + 1), {}, "at most"),
        ("print(1)\x00", {}, "NUL"),
        ("print(1)", {"language": "ruby"}, "unknown language"),
        ("print(1)", {"timeout": 0}, "positive"),
        ("print(1)", {"timeout": -1.0}, "positive"),
        ("print(1)", {"timeout": float("nan")}, "finite"),
        ("print(1)", {"timeout": LIMITS.max_timeout + 1}, "maximum"),
        ("print(1)", {"cpu_time": "10"}, "number"),
        ("print(1)", {"cpu_time": True}, "number"),
        ("print(1)", {"memory_mb": 256.0}, "int"),
        ("print(1)", {"memory_mb": LIMITS.max_memory_mb + 1}, "maximum"),
        ("print(1)", {"memory_mb": 8}, "at least 32"),
    ],
)
def test_invalid_requests_say_why(code, over, message):
    with pytest.raises(JobError, match=message):
        check_request(code, **ok_request(**over))


def test_valid_request_passes():
    check_request("print(1)", **ok_request())


def test_job_round_trips_and_forbids_unknown_fields():
    job = Job(job_id="abc", code="print(1)")
    assert Job.from_json(job.to_json()) == job
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Job.from_json('{"job_id": "abc", "code": "x", "surprise": 1}')
    with pytest.raises(pydantic.ValidationError, match="timeout"):
        Job.from_json('{"job_id": "abc", "code": "x", "timeout": "30"}')  # strict: no coercion


def test_result_round_trips():
    r = Result(job_id="a", status=Status.TIMEOUT, exit_code=-9, stdout="\x00\udcff".encode("utf-8", "replace").decode())
    assert Result.from_json(r.to_json()) == r


_JOB = RunJob(code="", language="python", timeout=1, cpu_time=1, memory_mb=64)


def test_runner_statuses_are_schema_statuses():
    """The lean runner speaks plain strings; they must all be valid Status values."""
    produced = {
        verdict.of_wait_status(_JOB, None, 0, 0.0, False)[0].value,
        verdict.of_wait_status(_JOB, None, 256, 0.0, False)[0].value,
        verdict.of_wait_status(_JOB, None, 9, 1.0, False)[0].value,
        verdict.of_wait_status(_JOB, None, 14, 0.0, False)[0].value,
        verdict.of_wait_status(_JOB, None, 256, 0.0, True)[0].value,
        verdict.of_wait_status(_JOB, verdict.Overrun.OUTPUT, 9, 0.0, False)[0].value,
    }
    assert produced == {"ok", "error", "cpu_limit", "timeout", "memory_limit", "output_limit"}
    assert produced <= {s.value for s in Status}


def test_keys_live_under_the_pool_prefix():
    for k in (keys.stream("p1"), keys.result("p1", "j"), keys.reply_channel("p1", "c"), keys.pod("p1", "x")):
        assert k.startswith("warmfleet:{p1}:")
    with pytest.raises(ValueError):
        keys.stream("Bad Pool!")


def every_key(pool: str) -> list[str]:
    """One of each key function of keys.py (a new one must be added here to be checked)."""
    fns = [getattr(keys, n) for n in dir(keys) if callable(getattr(keys, n)) and not n.startswith("_")]
    out = []
    for fn in fns:
        if fn in (keys.check_pool, keys.hash_tag, keys.pool_prefix, keys.re.compile) or not getattr(fn, "__module__", "") == keys.__name__:
            continue
        if fn.__code__.co_varnames[:1] != ("pool",):  # the HTTP service's keys: every_http_key
            continue
        n_args = fn.__code__.co_argcount
        out.append(fn(pool, *["x" * i for i in range(1, n_args)]))
    return out


def every_http_key() -> list[str]:
    fns = [getattr(keys, n) for n in dir(keys) if callable(getattr(keys, n)) and not n.startswith("_")]
    return [fn(*["x" * i for i in range(1, fn.__code__.co_argcount + 1)]) for fn in fns
            if getattr(fn, "__module__", "") == keys.__name__ and fn.__code__.co_varnames[:1] != ("pool",)
            and fn not in (keys.check_pool, keys.hash_tag, keys.pool_prefix)]


def test_the_http_services_keys_share_one_slot_no_pool_can_have():
    from redis.crc import key_slot

    names = every_http_key()
    assert len(names) >= 6 and all(k.startswith(keys.HTTP_PREFIX) for k in names)
    assert len({key_slot(k.encode()) for k in names}) == 1
    with pytest.raises(ValueError):
        keys.check_pool("_http")  # so no pool's keys can land among them


def test_every_key_of_a_pool_hashes_to_one_cluster_slot():
    from redis.crc import key_slot

    names = every_key("p1")
    assert len(names) >= 12  # stream, result, output, reply, idem, pods, pod, limits, dead, control, recycling, recycles
    assert {key_slot(k.encode()) for k in names} == {key_slot(b"{p1}")}
    # and pools spread: these three land on three different slots
    assert len({key_slot(keys.stream(p).encode()) for p in ("default", "data-analysis", "p1")}) == 3

