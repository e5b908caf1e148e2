"""Groups of settings that several roles read: which Redis and pool, which pod, how many
slots and sessions, how a pod drains, and the files that hold settings and state."""

from __future__ import annotations

import socket

from pydantic import BaseModel

from warmfleet.settings.base import setting


class Connection(BaseModel):
    """Redis and pool: every role."""

    redis_url: str | None = setting(
        None,
        "The fleet's Redis: redis://, rediss://, unix://, redis+sentinel://HOST:PORT[,...]/SERVICE[/DB] or "
        "redis+cluster://HOST:PORT[,...]. Required by the executor and the GC sidecar; a client without it "
        "uses the URL a running `warmfleet up` advertises. Put a password in the WARMFLEET_CONFIG_FILE file, "
        "not the environment.",
        secret=True,
    )
    pool: str = setting("default", "The pool (a Redis stream of jobs and the pods serving it) this process serves or submits to.")


class Logging(BaseModel):
    """Logging of the pod's processes."""

    log_level: str = setting(
        "INFO", "Log level of the executor and the GC sidecar (DEBUG, INFO, WARNING, ERROR); `warmfleet up` passes it to its pods.",
    )


class Files(BaseModel):
    """Settings file and local state."""

    config_file: str | None = setting(
        None,
        "A dotenv file of WARMFLEET_* settings, read after the environment (the environment wins). Secrets "
        "belong there, mode 0600 or a mounted Kubernetes Secret: inside gVisor a job running as another uid "
        "can read /proc/1/environ, not the file.",
    )
    state_dir: str | None = setting(
        None,
        "Where a running `warmfleet up` advertises its Redis URL to clients on this machine (a private 0700 "
        "directory).",
        default_text="/tmp/warmfleet-UID",
    )


class PodIdentity(BaseModel):
    """Pod identity and health file: the executor and its GC sidecar."""

    pod_id: str = setting(socket.gethostname, "This pod's name (in Kubernetes the pod's name).", default_text="the host name")
    health_file: str | None = setting(
        None,
        "The executor's liveness heartbeat file, in a directory jobs cannot write; the GC sidecar and "
        "`warmfleet probe` read it (/run/warmfleet/health.json in Kubernetes). Unset: the executor writes none.",
    )


class Capacity(BaseModel):
    """Pod capacity: slots, sessions and what jobs start with."""

    slots: int = setting(2, "Job slots per pod: jobs one pod runs at once, each in a pre-forked child.", ge=1, le=64)
    sessions: int = setting(4, "Sessions one pod holds at once (0: none); they hold no job slot.", ge=0, le=256)
    preload: list[str] = setting(
        [], "Modules the runner imports before forking jobs, and sessions start with (JSON list, e.g. [\"numpy\"]).",
    )


class Draining(BaseModel):
    """Stopping a pod."""

    drain_timeout_s: float = setting(
        330.0,
        "How long a stopping pod lets its in-flight jobs finish before it kills them: the executor's drain "
        "deadline, and how long `warmfleet up` waits for each pod on stop. The default covers the longest job "
        "the default limits allow (300 s) plus a margin; an idle pod stops at once.",
        gt=0,
    )
