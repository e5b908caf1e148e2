"""The one loader: unknown names refused with the closest known one, where each value came
from, one default per name, the dotenv file, and what launchers write read back the same."""

from __future__ import annotations

import os
import warnings

import pytest

from warmfleet.settings import (
    ROLES, ClientSettings, ExecutorSettings, FleetSettings, Origin, Settings, SettingsError, UnknownSetting,
    UnknownSettingWarning, load, origins, to_env, write_env_file,
)
from warmfleet.settings.show import render
from warmfleet.settings.tree import GROUPS, known_names

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("WARMFLEET_"):
            monkeypatch.delenv(name)


def test_an_unknown_name_is_refused_naming_the_closest_known_one(monkeypatch):
    monkeypatch.setenv("WARMFLEET_SLOTZ", "3")
    with pytest.raises(UnknownSetting) as caught:
        load(FleetSettings)
    assert caught.value.unknown == [("WARMFLEET_SLOTZ", "WARMFLEET_SLOTS", "environment")]
    assert "did you mean WARMFLEET_SLOTS?" in str(caught.value)


def test_nested_names_are_checked_field_by_field(monkeypatch):
    monkeypatch.setenv("WARMFLEET_LIMITS__MAX_TIMEOUT", "60")  # known
    monkeypatch.setenv("WARMFLEET_GC__MAX_AGE", "60")  # a typo of GC__MAX_AGE_S
    with pytest.raises(UnknownSetting) as caught:
        load(FleetSettings)
    assert caught.value.unknown == [("WARMFLEET_GC__MAX_AGE", "WARMFLEET_GC__MAX_AGE_S", "environment")]


def test_an_unknown_name_in_the_file_is_refused_too(monkeypatch, tmp_path):
    conf = tmp_path / "pod.env"
    conf.write_text('WARMFLEET_RECLAIM_IDLE="5"\nPATH=/bin\n')  # other names than ours are not our business
    monkeypatch.setenv("WARMFLEET_CONFIG_FILE", str(conf))
    monkeypatch.setenv("WARMFLEET_REDIS_URL", "redis://localhost")
    with pytest.raises(UnknownSetting) as caught:
        load(ExecutorSettings)
    assert caught.value.unknown == [("WARMFLEET_RECLAIM_IDLE", "WARMFLEET_RECLAIM_IDLE_S", f"file {conf}")]


def test_a_client_warns_and_goes_on(monkeypatch):
    monkeypatch.setenv("WARMFLEET_POOOL", "x")
    with pytest.warns(UnknownSettingWarning, match="did you mean WARMFLEET_POOL"):
        settings = load(ClientSettings, strict=False)
    assert settings.pool == "default"


def test_a_name_another_role_reads_is_known_to_every_role(monkeypatch):
    """A pod's environment holds the sidecar's and the proxy's names too."""
    monkeypatch.setenv("WARMFLEET_GC__MAX_JOBS", "5")
    monkeypatch.setenv("WARMFLEET_EGRESS_LISTEN", "unix:/x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(ClientSettings, strict=False).pool == "default"


def test_where_each_value_came_from(monkeypatch, tmp_path):
    conf = tmp_path / "up.env"
    conf.write_text('WARMFLEET_SLOTS="5"\nWARMFLEET_PODS="3"\nWARMFLEET_LIMITS__TIMEOUT="7"\n')
    monkeypatch.setenv("WARMFLEET_CONFIG_FILE", str(conf))
    monkeypatch.setenv("WARMFLEET_SLOTS", "4")  # the environment wins over the file
    monkeypatch.setenv("WARMFLEET_LIMITS__MAX_TIMEOUT", "60")
    s = load(FleetSettings, {"sessions": 1})
    assert (s.slots, s.pods, s.sessions, s.limits.timeout, s.limits.max_timeout) == (4, 3, 1, 7.0, 60.0)
    where = origins(s)
    assert where["WARMFLEET_SLOTS"] is Origin.ENVIRONMENT
    assert where["WARMFLEET_PODS"] is Origin.FILE
    assert where["WARMFLEET_SESSIONS"] is Origin.COMMAND_LINE
    assert where["WARMFLEET_LIMITS__TIMEOUT"] is Origin.FILE
    assert where["WARMFLEET_LIMITS__MAX_TIMEOUT"] is Origin.ENVIRONMENT
    assert where["WARMFLEET_LIMITS__MEMORY_MB"] is Origin.DEFAULT
    assert where["WARMFLEET_DRAIN_TIMEOUT_S"] is Origin.DEFAULT


def test_a_missing_settings_file_stops_a_server(monkeypatch, tmp_path):
    monkeypatch.setenv("WARMFLEET_CONFIG_FILE", str(tmp_path / "absent.env"))
    with pytest.raises(SettingsError, match="absent.env"):
        load(FleetSettings)


def test_a_bad_value_is_named_by_its_variable(monkeypatch):
    monkeypatch.setenv("WARMFLEET_SLOTS", "many")
    with pytest.raises(SettingsError, match="WARMFLEET_SLOTS: Input should be a valid integer"):
        load(FleetSettings)


def test_the_executor_needs_its_redis_url():
    with pytest.raises(SettingsError, match="WARMFLEET_REDIS_URL is required by the executor"):
        load(ExecutorSettings)


def test_one_definition_and_one_default_per_name():
    """Every field is written in exactly one group, and every role that reads a name shares
    that one definition (so one default): the 60 s / 330 s drain split cannot come back."""
    owners: dict[str, list[str]] = {}
    for group in GROUPS:
        for field in group.__annotations__:
            owners.setdefault(field, []).append(group.__name__)
    assert {f: o for f, o in owners.items() if len(o) > 1} == {}
    assert set(owners) == set(Settings.model_fields)
    for role in ROLES.values():
        for field, info in role.model_fields.items():
            tree = Settings.model_fields[field]
            assert (info.default, info.default_factory, info.description) == (tree.default, tree.default_factory, tree.description), field
    assert Settings.model_fields["drain_timeout_s"].default == 330.0


def test_every_variable_has_a_description():
    from warmfleet.settings.tree import leaves

    assert [f"{f}.{s}" for f, s, info in leaves(Settings) if not info.description] == []
    assert len(known_names()) > 100


def test_what_a_launcher_writes_reads_back_the_same(monkeypatch, tmp_path):
    pod = ExecutorSettings.from_values(
        redis_url="redis://:pw@h/0", pod_id="p-1", slots=3, preload=["json", "csv"], drop_privileges=False,
        limits={"max_timeout": 60}, warmup=[], egress_secret="s" * 16, session_open_fault="after_read",
    )
    env = to_env(pod)
    assert env["WARMFLEET_LIMITS__MAX_TIMEOUT"] == "60.0" and "WARMFLEET_LIMITS__TIMEOUT" not in env
    assert "WARMFLEET_PYTHON" not in env  # unset: the reading process's own interpreter
    path = tmp_path / "pod.env"
    write_env_file(str(path), env)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("WARMFLEET_CONFIG_FILE", str(path))
    back = load(ExecutorSettings)
    assert back.model_dump() == {**pod.model_dump(), "config_file": str(path)}


def test_from_values_ignores_this_process_environment(monkeypatch):
    monkeypatch.setenv("WARMFLEET_SLOTS", "9")
    assert ExecutorSettings.from_values(redis_url="redis://h").slots == 2
    assert ExecutorSettings(redis_url="redis://h").slots == 9  # direct construction reads it


def test_config_masks_secrets(monkeypatch):
    monkeypatch.setenv("WARMFLEET_REDIS_URL", "redis://user:hunter2@redis.example:6379/0")
    monkeypatch.setenv("WARMFLEET_EGRESS_SECRET", "0123456789abcdef0123")
    out = render(load(FleetSettings))
    assert "hunter2" not in out and "0123456789abcdef" not in out
    assert "redis://user:****@redis.example:6379/0" in out


def test_a_client_object_warns_and_is_made(monkeypatch):
    from dispatcher import Client

    monkeypatch.setenv("WARMFLEET_POOOL", "x")
    with pytest.warns(UnknownSettingWarning, match="WARMFLEET_POOOL.*did you mean WARMFLEET_POOL"):
        client = Client("redis://127.0.0.1:1")  # no connection is made before the first job
    assert client is not None


def test_the_tree_stays_lean_for_the_client_install():
    """Clients load the tree, and the client install has redis, pydantic and pydantic-settings
    only: importing it must pull in nothing of the server side."""
    import subprocess
    import sys

    code = "import sys, warmfleet.settings; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    loaded = set(out.stdout.split())
    assert "pydantic_settings" in loaded, out.stderr
    heavy = {"redis", "psutil", "prometheus_client", "kubernetes", "yaml", "rich", "h11", "executor", "dispatcher",
             "gc_sidecar", "egress", "opentelemetry"}
    assert loaded & heavy == set()
