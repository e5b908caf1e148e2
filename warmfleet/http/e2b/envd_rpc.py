"""envd's Connect-RPC services (filesystem.Filesystem, process.Process): what
`files.list/exists/get_info/remove/make_dir/rename/watch_dir` and `commands.run` call.
Not served: each answers a Connect error (`unimplemented`, with a message the SDK shows)
rather than a 404 the SDK would misreport; docs/protocols/e2b.md lists them. Use
`run_code` (Python or bash) for what they do."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from warmfleet.http.e2b.access import sandbox_access

router = APIRouter(tags=["e2b-sandbox"])

ALTERNATIVE = {
    "filesystem.Filesystem": "run Python or bash with run_code (os.listdir, os.remove...), or files.read/write",
    "process.Process": "run the command with run_code(code, language='bash')",
}


@router.post("/filesystem.Filesystem/{method}", include_in_schema=False)
@router.post("/process.Process/{method}", include_in_schema=False)
async def unimplemented(method: str, request: Request) -> JSONResponse:
    service = request.url.path.strip("/").split("/", 1)[0]
    await sandbox_access(request)
    return JSONResponse({"code": "unimplemented",
                         "message": f"warmfleet does not serve envd's {service}/{method}: {ALTERNATIVE[service]}"},
                        status_code=501)
