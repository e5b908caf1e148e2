"""envd's Connect-RPC services (JSON codec): filesystem.Filesystem's unary methods
(ListDir, Stat, MakeDir, Remove, Move: `files.list/exists/get_info/make_dir/remove/
rename`) are answered from the sandbox (envd_fs.py), and process.Process/Start
(`commands.run` in the foreground, envd_proc.py). WatchDir and the rest of
process.Process (background handles, `pty.*`) are not served: each answers a Connect error (`unimplemented`,
with a message the SDK shows) rather than a 404 the SDK would misreport;
docs/protocols/e2b.md lists them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from warmfleet.http.e2b import envd_fs, envd_proc
from warmfleet.http.e2b.access import sandbox_access

router = APIRouter(tags=["e2b-sandbox"])

FS_METHODS = frozenset({"ListDir", "Stat", "MakeDir", "Remove", "Move"})
ALTERNATIVE = {
    "filesystem.Filesystem": "watching a directory is not served; poll files.list, or run Python with run_code",
    "process.Process": "commands.run in the foreground is served; for the rest run the command with "
                       "run_code(code, language='bash')",
}


@router.post("/filesystem.Filesystem/{method}", include_in_schema=False)
@router.post("/process.Process/{method}", include_in_schema=False)
async def rpc(method: str, request: Request) -> JSONResponse:
    service = request.url.path.strip("/").split("/", 1)[0]
    record, _tenant = await sandbox_access(request)
    if service == "filesystem.Filesystem" and method in FS_METHODS:
        return await envd_fs.call(method, request, record)
    if service == "process.Process" and method == "Start":
        return await envd_proc.start(request, record)
    return JSONResponse({"code": "unimplemented",
                         "message": f"warmfleet does not serve envd's {service}/{method}: {ALTERNATIVE[service]}"},
                        status_code=501)
