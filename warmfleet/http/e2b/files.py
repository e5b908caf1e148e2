"""envd's file transfer (`sbx.files.read` / `sbx.files.write`): GET and POST /files.

E2B's home directory, /home/user, is the sandbox's workspace: a path is relative to it
or absolute under it; anything else (another absolute path, '..', an empty part, NUL) is
refused with 400 before it reaches the sandbox. In the sandbox the service's own calls
(in a context of their own: no user globals) open the last part without following a link
and check its parents resolve inside the workspace: links a cell made cannot lead a
transfer out. (The code in the sandbox runs as the sandbox's uid under gVisor: what a
transfer could reach, a cell can anyway; the confinement is for honest clients' paths.)

Reads come back through the call's stdout (base64), so a read is bounded by the fleet's
output cap (about 3/4 of it: 768 KiB by default); writes travel as the call's input
files, bounded by the fleet's input limits. Over either: 413 naming the limit.
"""

from __future__ import annotations

import base64
import binascii
import posixpath

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from dispatcher.errors import InvalidJob, SessionEnded
from warmfleet.contract.schema import JobError, check_relative_path
from warmfleet.http.e2b.access import not_found, sandbox_access
from warmfleet.http.e2b.sandboxes import SERVICE_CONTEXT, SandboxRecord, sandboxes_of
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of

router = APIRouter(tags=["e2b-sandbox"])

HOME = "/home/user"

READ_CODE = """import os, stat, base64, sys
root = os.path.realpath(%(root)r)
path = os.path.join(root, %(rel)r)
parent = os.path.realpath(os.path.dirname(path))
if parent != root and not parent.startswith(root + os.sep):
    raise PermissionError("outside the workspace")
fd = os.open(os.path.join(parent, os.path.basename(path)), os.O_RDONLY | os.O_NOFOLLOW)
try:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError("a directory")
    if st.st_size > %(limit)d:
        raise OverflowError(st.st_size)
    with os.fdopen(fd, "rb", closefd=False) as f:
        sys.stdout.write(base64.b64encode(f.read(%(limit)d + 1)).decode())
finally:
    os.close(fd)
"""

# The files land in the call's working directory (the session's inputs); a cell may have
# moved it: then they move to the workspace, where they were meant to go.
WRITE_CODE = """import os
root = os.path.realpath(%(root)r)
if os.path.realpath(os.getcwd()) != root:
    for rel in %(rels)r:
        dest = os.path.join(root, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(rel, dest)
"""


def workspace_path(path: str | None) -> str:
    """E2B's path as a path relative to the workspace, or 400."""
    if not path:
        raise ApiError(400, "missing path")
    if path.startswith("/"):
        norm = posixpath.normpath(path)
        if norm == HOME or not (norm + "/").startswith(HOME + "/") or ".." in path.split("/"):
            raise ApiError(400, f"path {path!r} is outside the sandbox's workspace ({HOME}); give a path under it "
                                "or relative to it")
        path = norm[len(HOME) + 1:]
    elif path.startswith("~/"):
        path = path[2:]
    try:
        return check_relative_path(path)
    except JobError as exc:
        raise ApiError(400, f"{exc}; paths are relative to {HOME}") from None


def _session(request: Request, record: SandboxRecord):
    return fleet_of(request).client(record.pool).session(id=record.sandbox_id)


@router.get("/files")
async def read_file(request: Request, path: str | None = None) -> Response:
    record, _tenant = await sandbox_access(request)
    rel = workspace_path(path)
    client = fleet_of(request).client(record.pool)
    limits = await client.limits()
    limit = max(0, (limits.output_bytes - 16) * 3 // 4)
    try:
        result = await _session(request, record).run(READ_CODE % {"root": record.workspace, "rel": rel, "limit": limit},
                                                    context=SERVICE_CONTEXT)
    except SessionEnded:
        await sandboxes_of(request.app).forget(record)
        raise not_found(record.sandbox_id) from None
    if not result.ok:
        raise _file_error(result.stderr, path or "", limit)
    try:
        data = base64.b64decode(result.stdout, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(500, "the sandbox answered a read with something that is not the file") from None
    return Response(data, media_type="application/octet-stream")


def _file_error(stderr: str, path: str, limit: int) -> ApiError:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if last.startswith("FileNotFoundError") or last.startswith("NotADirectoryError"):
        return ApiError(404, f"path {path!r} not found")
    if last.startswith("IsADirectoryError"):
        return ApiError(400, f"path {path!r} is a directory")
    if last.startswith("OverflowError"):
        return ApiError(413, f"file {path!r} is larger than the {limit} bytes a read may return")
    if "[Errno 40]" in last or "Too many levels of symbolic links" in last:
        return ApiError(400, f"path {path!r} is a link; links are not followed")
    if last.startswith("PermissionError"):
        return ApiError(403, f"path {path!r} leads outside the workspace or may not be read")
    return ApiError(500, f"could not read {path!r}: {last[:300]}")


@router.post("/files")
async def write_files(request: Request, path: str | None = None) -> JSONResponse:
    """Multipart, as the SDK sends it: one `file` part per file, named by `path` for a
    single file, else by each part's filename."""
    record, _tenant = await sandbox_access(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send the file as multipart/form-data (field 'file'), as the E2B SDK does")
    try:
        form = await request.form(max_files=100, max_fields=100)
    except Exception as exc:  # noqa: BLE001 - the multipart parser's errors: the client's body is malformed
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    parts = [v for _k, v in form.multi_items() if hasattr(v, "read")]
    if not parts:
        raise ApiError(400, "no file in the body (a multipart field 'file' with the content)")
    files: dict[str, bytes] = {}
    for part in parts:
        name = path if (path and len(parts) == 1) else (part.filename or "")
        files[workspace_path(name)] = await part.read()
    try:
        result = await _session(request, record).run(
            WRITE_CODE % {"root": record.workspace, "rels": list(files)}, files=files, context=SERVICE_CONTEXT)
    except InvalidJob as exc:
        raise ApiError(413 if "bytes" in str(exc) else 400, f"cannot write: {exc}") from None
    except SessionEnded:
        await sandboxes_of(request.app).forget(record)
        raise not_found(record.sandbox_id) from None
    if not result.ok:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.error or ""
        raise ApiError(400, f"could not write: {last[:300]}")
    return JSONResponse([{"name": posixpath.basename(rel), "type": "file", "path": f"{HOME}/{rel}"} for rel in files])
