"""docs/reference/settings.md, generated from the tree: one entry of warmfleet/cli/reference.py's
pages (`python -m warmfleet.cli.reference --write`), and tests fail when the committed page drifts."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from warmfleet.settings.base import default_text, is_secret
from warmfleet.settings.env import env_value
from warmfleet.settings.tree import GROUPS, ROLES, Settings, env_name, nested_model

PATH = "docs/reference/settings.md"

INTRO = """\
# Settings

Every process of warmfleet reads its settings from `WARMFLEET_*` environment variables and
from the dotenv file named by `WARMFLEET_CONFIG_FILE` (the environment wins; flags of
`warmfleet up` win over both). Each variable below is defined once, with one default,
in `warmfleet/settings/`.

- **Unknown names are refused.** A `WARMFLEET_*` variable the tree does not define, in the
  environment or in the file, stops `warmfleet up`, the executor, the GC sidecar and the
  egress proxy at start, naming the closest known variable
  (`WARMFLEET_SLOTZ: did you mean WARMFLEET_SLOTS?`). A client (`Client()`, `warmfleet run`)
  only warns (`UnknownSettingWarning`): a stray variable must not break an application.
- **Nested settings** take one variable per field (`WARMFLEET_LIMITS__MAX_TIMEOUT=600`), or
  the whole model as JSON (`WARMFLEET_LIMITS='{"max_timeout": 600}'`). Lists are JSON
  (`WARMFLEET_PRELOAD='["numpy", "pandas"]'`). Booleans: `true` / `false`.
- **Secrets** (marked below) belong in the file (mode 0600, or a mounted Kubernetes
  Secret), never in the environment: inside gVisor a job running as another uid can read
  `/proc/1/environ`, not the file.
- **`warmfleet config [--role ROLE]`** prints the effective settings of a role and where
  each came from (default, environment, file, command line), secrets masked.
- `warmfleet up` passes the executor and egress-proxy settings it was given to its pods and
  its egress proxy (each pod gets a settings file written from the tree).

Roles: """


def _default(info) -> str:
    text = default_text(info)
    if text is not None:
        return text
    if info.default is PydanticUndefined:
        return "(computed)" if info.default_factory else "(required)"
    if info.default is None:
        return "unset"
    if isinstance(info.default, BaseModel):
        return "(per field)"
    value = env_value(info.default)
    return f"`{value}`" if value != "" else '`""`'


def render() -> str:
    lines = [INTRO + ", ".join(f"`{name}` ({cls.__doc__.splitlines()[0].rstrip('.')})" for name, cls in ROLES.items()) + ".", ""]
    for group in GROUPS:
        lines += [f"## {group.__doc__.strip().splitlines()[0].rstrip('.')}", "",
                  "| Variable | Default | Read by | Description |", "|---|---|---|---|"]
        for field in group.__annotations__:
            info = Settings.model_fields[field]
            readers = ", ".join(f"`{r}`" for r, cls in ROLES.items() if field in cls.model_fields) or "scripts/"
            lines.append(_row(env_name(field), info, readers))
            sub_model = nested_model(info.annotation)
            if sub_model is not None:
                for sub, sub_info in sub_model.model_fields.items():
                    lines.append(_row(env_name(field, sub), sub_info, readers))
        lines.append("")
    return "\n".join(lines)


def _row(name: str, info, readers: str) -> str:
    description = (info.description or "").replace("|", "\\|")
    if is_secret(info):
        description = "**Secret.** " + description
    return f"| `{name}` | {_default(info)} | {readers} | {description} |"

