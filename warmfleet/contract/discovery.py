"""Where a running `warmfleet up` advertises its Redis URL, so that `warmfleet run`
and `Client()` find it without flags. One file in a private (0700) directory."""

from __future__ import annotations

import os
import stat


def state_dir(configured: str | None) -> str:
    """`configured`: the state_dir setting (warmfleet/settings/common.py), None for the default.
    Every function here takes it: a caller cannot forget the setting."""
    return configured or f"/tmp/warmfleet-{os.getuid()}"


def url_file(configured: str | None) -> str:
    return os.path.join(state_dir(configured), "redis-url")


def private_dir(configured: str | None) -> str:
    path = state_dir(configured)
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    # Refuse a directory someone else planted (or a symlink) at the predictable path.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RuntimeError(f"{path} is not a private directory owned by uid {os.getuid()}")
    return path


def write_url(url: str, configured: str | None) -> None:
    private_dir(configured)
    tmp = url_file(configured) + f".{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
        f.write(url)
    os.replace(tmp, url_file(configured))


def read_url(configured: str | None) -> str | None:
    try:
        with open(url_file(configured)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def clear_url(url: str, configured: str | None) -> None:
    """Remove the advertisement, but only if it is still ours."""
    if read_url(configured) == url:
        try:
            os.unlink(url_file(configured))
        except FileNotFoundError:
            pass
