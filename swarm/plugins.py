"""Tools that plug into the swarm from other packages, through the ``swarm_mcp.tools`` entry point group.

Each entry point names a callable that takes a ``ToolRegistry`` and returns it extended (the phases register
``phases.tools:phase_tool_registry`` in pyproject.toml), so swarm/ gets the phase tools without importing phases::

    [project.entry-points."swarm_mcp.tools"]
    phases = "phases.tools:phase_tool_registry"

With no plugin installed the swarm has its built-in tools only, and agents keep only the tools that exist.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable, Mapping

from .errors import ConfigError
from .manifest import AgentManifest
from .tools import ToolRegistry, default_registry

TOOL_PLUGINS = "swarm_mcp.tools"

log = logging.getLogger("swarm_mcp.plugins")


def tool_plugins() -> list[EntryPoint]:
    """The installed entry points of the ``swarm_mcp.tools`` group, by name."""
    return sorted(entry_points(group=TOOL_PLUGINS), key=lambda ep: ep.name)


def plugin_tools(plugins: Iterable[EntryPoint] | None = None) -> ToolRegistry:
    """The swarm's built-in tools, extended by each plugin in turn (default: the installed ones)."""
    registry = default_registry()
    for plugin in tool_plugins() if plugins is None else plugins:
        try:
            extend = plugin.load()
            extended = extend(registry)
        except Exception as exc:
            raise ConfigError(f"the swarm tool plugin {plugin.name!r} ({plugin.value}) failed to load: {exc}; "
                              "reinstall the package that provides it, or uninstall it") from exc
        if not isinstance(extended, ToolRegistry):
            raise ConfigError(f"the swarm tool plugin {plugin.name!r} ({plugin.value}) returned {type(extended).__name__}, "
                              "expected the ToolRegistry it was given, extended")
        registry = extended
    return registry


def agents_with_tools(agents: Mapping[str, AgentManifest], registry: ToolRegistry) -> dict[str, AgentManifest]:
    """``agents`` with only the tools ``registry`` has (a warning names what is left out: e.g. the phase tools, with no
    plugin installed)."""
    known = set(registry.names())
    missing = sorted({tool for agent in agents.values() for tool in agent.tools} - known)
    if not missing:
        return dict(agents)
    log.warning("tools %s are not installed (no %s plugin provides them): the agents run without them; "
                "install the package with its plugins (pip install swarm-mcp) for the phase tools", missing, TOOL_PLUGINS)
    return {name: agent if set(agent.tools) <= known else agent.model_copy(update={"tools": [t for t in agent.tools if t in known]})
            for name, agent in agents.items()}
