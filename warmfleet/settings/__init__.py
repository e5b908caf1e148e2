"""Every WARMFLEET_* setting, defined once (one default, one description) in a tree of
groups; each process reads its branch (a role) through one loader, launchers write other
processes' settings through one serializer, and the reference page is generated from it.

It imports only pydantic, pydantic-settings and warmfleet.contract: clients load it, and
the client install stays lean. The lean processes (runner, job child, session process)
never import it: they get a typed record over a pipe.
"""

from warmfleet.settings.client import CelerySettings, ClientSettings
from warmfleet.settings.egress import EgressSettings
from warmfleet.settings.env import set_values, to_env, write_env_file
from warmfleet.settings.executor import ExecutorSettings
from warmfleet.settings.loader import (
    Origin, SettingsError, UnknownSetting, UnknownSettingWarning, load, origins,
)
from warmfleet.settings.local import DEFAULT_PLATFORM, EGRESS_PROXY_FIELDS, POD_FIELDS, FleetSettings
from warmfleet.settings.sidecar import RecyclePolicy, SidecarSettings
from warmfleet.settings.tree import CONFIG_FILE, ROLES, Settings, env_name, known_names

__all__ = [
    "CONFIG_FILE", "DEFAULT_PLATFORM", "EGRESS_PROXY_FIELDS", "POD_FIELDS", "ROLES", "CelerySettings",
    "ClientSettings", "EgressSettings", "ExecutorSettings", "FleetSettings", "Origin", "RecyclePolicy", "Settings",
    "SettingsError", "SidecarSettings", "UnknownSetting", "UnknownSettingWarning", "env_name", "known_names", "load",
    "origins", "set_values", "to_env", "write_env_file",
]
