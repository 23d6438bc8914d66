"""Tools for the chat: MCP servers configured in mcp.json, run on demand, and the loop that
lets a model call their tools with the user's say before each call."""
