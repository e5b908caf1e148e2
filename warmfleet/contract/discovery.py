"""Where a running `warmfleet up` advertises its Redis URL, so that `warmfleet run`
and `Client()` find it without flags. One file in a private (0700) directory."""

from __future__ import annotations

import os
import stat


def state_dir() -> str:
    return os.environ.get("WARMFLEET_STATE_DIR") or f"/tmp/warmfleet-{os.getuid()}"


def url_file() -> str:
    return os.path.join(state_dir(), "redis-url")


def private_dir() -> str:
    path = state_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    # Refuse a directory someone else planted (or a symlink) at the predictable path.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RuntimeError(f"{path} is not a private directory owned by uid {os.getuid()}")
    return path


def write_url(url: str) -> None:
    private_dir()
    tmp = url_file() + f".{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
        f.write(url)
    os.replace(tmp, url_file())


def read_url() -> str | None:
    try:
        with open(url_file()) as f:
            return f.read().strip() or None
    except OSError:
        return None


def clear_url(url: str) -> None:
    """Remove the advertisement, but only if it is still ours."""
    if read_url() == url:
        try:
            os.unlink(url_file())
        except FileNotFoundError:
            pass
