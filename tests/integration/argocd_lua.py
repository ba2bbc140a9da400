"""Argo CD's Lua (health check, resource actions) run as Argo CD runs it: the live object as
the global `obj`, the script's chunk returning the result. A real Lua 5.4 runs it (Argo CD
embeds gopher-lua, a Lua 5.1; the scripts keep to what both have)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "gitops" / "argocd" / "health.lua"
ACTIONS = REPO / "gitops" / "argocd" / "actions"
LUA_INSTALL = "apt-get install -y lua5.4"


def lua_literal(value) -> str:
    """A Lua table constructor for JSON-like data (Debian's Lua has no JSON library)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        # None means absent, as a missing JSON field is nil in Argo CD's conversion.
        return (
            "{"
            + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items() if v is not None)
            + "}"
        )
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def run_lua(lua: str, obj: dict, script: Path, tmp_path: Path, show: str) -> str:
    """Run `script` on `obj`; `show`, Lua run after it, prints its result (`result`)."""
    driver = tmp_path / "driver.lua"
    driver.write_text(
        f"obj = {lua_literal(obj)}\nlocal result = dofile({lua_literal(str(script))})\n{show}\n"
    )
    result = subprocess.run([lua, str(driver)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def argocd_health(lua: str, obj: dict, tmp_path: Path, script: Path = HEALTH_LUA) -> tuple[str, str]:
    """The health check's status and message."""
    out = run_lua(lua, obj, script, tmp_path, 'io.write(result.status, "\\t", result.message or "", "\\n")')
    status, _, message = out.rstrip("\n").partition("\t")
    return status, message


def offered(lua: str, obj: dict, tmp_path: Path, discovery: Path = ACTIONS / "discovery.lua") -> set[str]:
    """The actions the discovery script offers (not disabled) on `obj`."""
    show = 'for name, a in pairs(result) do if not a["disabled"] then io.write(name, "\\n") end end'
    return set(run_lua(lua, obj, discovery, tmp_path, show).split())


def suspend_after(lua: str, obj: dict, tmp_path: Path, action: Path) -> str:
    """What an action leaves in the object: `<spec.suspend>|<spec.startScript>`."""
    return run_lua(
        lua, obj, action, tmp_path, 'io.write(tostring(result.spec.suspend), "|", result.spec.startScript)'
    )
