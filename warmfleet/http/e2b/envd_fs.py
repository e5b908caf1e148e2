"""envd's filesystem service (Connect-RPC, JSON codec, unary): what `files.list`,
`exists`, `get_info`, `make_dir`, `remove` and `rename` call, answered from the sandbox.

Each request is one call of the sandbox's session in the service's own context (no user
globals), confined as files.py's transfers are: paths under /home/user only, parents
resolved inside the workspace, the last part never followed. A Connect error is JSON
`{"code": "<connect code>", "message": ...}` with the HTTP status Connect pairs with it.
"""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import JSONResponse

from dispatcher.errors import SessionEnded
from warmfleet.http.e2b.access import not_found
from warmfleet.http.e2b.files import HOME, workspace_path
from warmfleet.http.e2b.sandboxes import SERVICE_CONTEXT, SandboxRecord, sandboxes_of
from warmfleet.http.errors import ApiError
from warmfleet.http.fleet import fleet_of

MAX_ENTRIES = 5000
MAX_DEPTH = 16
CONNECT_STATUS = {"invalid_argument": 400, "not_found": 404, "already_exists": 409, "permission_denied": 403,
                  "resource_exhausted": 429, "internal": 500}

FS_CODE = """import os, json, stat, datetime
root = os.path.realpath(%(root)r)
def place(rel):
    if not rel:
        return root
    path = os.path.join(root, rel)
    parent = os.path.realpath(os.path.dirname(path))
    if parent != root and not parent.startswith(root + os.sep):
        raise PermissionError("outside the workspace")
    return os.path.join(parent, os.path.basename(path))
def entry(path):
    st = os.lstat(path)
    link = stat.S_ISLNK(st.st_mode)
    kind = "FILE_TYPE_DIRECTORY" if stat.S_ISDIR(st.st_mode) else "FILE_TYPE_SYMLINK" if link else "FILE_TYPE_FILE"
    rel = os.path.relpath(path, root)
    e = {"name": os.path.basename(path) if rel != "." else "user", "type": kind,
         "path": %(home)r + ("" if rel == "." else "/" + rel), "size": str(st.st_size),
         "mode": st.st_mode & 0o7777, "permissions": stat.filemode(st.st_mode), "owner": str(st.st_uid),
         "group": str(st.st_gid), "isSymlink": link,
         "modifiedTime": datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).strftime("%%Y-%%m-%%dT%%H:%%M:%%S.%%fZ")}
    if link:
        e["symlinkTarget"] = os.readlink(path)
    return e
op, rel, arg = %(op)r, %(rel)r, %(arg)r
try:
    if op == "ListDir":
        top = place(rel)
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            raise NotADirectoryError(rel)
        out, todo = [], [(top, 1)]
        while todo and len(out) < %(max)d:
            d, depth = todo.pop(0)
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                out.append(entry(p))
                if depth < arg and stat.S_ISDIR(os.lstat(p).st_mode):
                    todo.append((p, depth + 1))
        answer = {"entries": out[:%(max)d]}
    elif op == "Stat":
        answer = {"entry": entry(place(rel))}
    elif op == "MakeDir":
        p = place(rel)
        if os.path.lexists(p):
            raise FileExistsError(rel)
        os.makedirs(p)
        answer = {"entry": entry(p)}
    elif op == "Remove":
        p = place(rel)
        if stat.S_ISDIR(os.lstat(p).st_mode):
            __import__("shutil").rmtree(p)
        else:
            os.unlink(p)
        answer = {}
    elif op == "Move":
        src, dst = place(rel), place(arg)
        os.lstat(src)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src, dst)
        answer = {"entry": entry(dst)}
except FileNotFoundError as exc:
    answer = {"error": "not_found", "message": f"{rel}: no such file or directory"}
except FileExistsError:
    answer = {"error": "already_exists", "message": f"{rel} already exists"}
except (NotADirectoryError, IsADirectoryError) as exc:
    answer = {"error": "invalid_argument", "message": f"{rel}: {type(exc).__name__}"}
except PermissionError as exc:
    answer = {"error": "permission_denied", "message": f"{rel}: {exc}"}
print(json.dumps(answer))
"""


def connect_error(code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=CONNECT_STATUS.get(code, 500))


def _rel(path: object) -> str:
    """The request's path relative to the workspace ("" for /home/user itself)."""
    if not isinstance(path, str):
        raise ApiError(400, "path must be a string")
    if path.rstrip("/") in (HOME, "", "~"):
        return ""
    return workspace_path(path)


async def call(method: str, request: Request, record: SandboxRecord) -> JSONResponse:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return connect_error("invalid_argument", "the request is not JSON (envd's JSON codec)")
    if not isinstance(body, dict):
        return connect_error("invalid_argument", "the request is not a JSON object")
    try:
        if method == "Move":
            rel, arg = _rel(body.get("source", "")), _rel(body.get("destination", ""))
            if not rel or not arg:
                return connect_error("invalid_argument", "move needs a source and a destination under /home/user")
        else:
            rel, arg = _rel(body.get("path", "")), 0
            if method == "ListDir":
                depth = body.get("depth") or 1
                if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
                    return connect_error("invalid_argument", f"depth must be 1-{MAX_DEPTH}")
                arg = depth
            elif method in ("MakeDir", "Remove") and not rel:
                return connect_error("invalid_argument", f"{method} of the workspace itself")
    except ApiError as exc:
        return connect_error("invalid_argument", exc.message)
    code = FS_CODE % {"root": record.workspace, "home": HOME, "op": method, "rel": rel, "arg": arg, "max": MAX_ENTRIES}
    try:
        result = await fleet_of(request).client(record.pool).session(id=record.sandbox_id).run(
            code, context=SERVICE_CONTEXT)
    except SessionEnded:
        await sandboxes_of(request.app).forget(record)
        raise not_found(record.sandbox_id) from None
    if not result.ok:
        if result.status.value == "output_limit":
            return connect_error("resource_exhausted", f"the listing is larger than the sandbox may answer at once")
        return connect_error("internal", f"{method} failed in the sandbox: {(result.stderr or result.error or '')[-300:]}")
    answer = json.loads(result.stdout)
    if "error" in answer:
        return connect_error(answer["error"], answer["message"])
    return JSONResponse(answer)
