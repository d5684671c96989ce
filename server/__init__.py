"""swarm-mcp's MCP face: the server (server.app), its tools, resources and transports, and the CLI."""

__version__ = "0.1.0"
