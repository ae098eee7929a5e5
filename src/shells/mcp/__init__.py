"""The MCP server: the tools an agent calls, shared by two transports.

- ``tools``: every tool with its input and output schemas and annotations, written against a
  ``Gateway`` (``gateway``) that speaks the REST API's wire forms.
- ``shaping``: what an agent reads (truncated output, masked credentials, typed errors).
- ``server``: the MCP ``Server`` (tools/list, tools/call) over any gateway.
- ``local``: the gateway of the HTTP transport, in the Shells server: the control layer, door ``mcp``.
- ``http``: the streamable-HTTP transport at ``POST /api/agent/invoke`` (Host/Origin checks, size cap).
- ``remote`` + ``stdio``: ``shells mcp``, the stdio transport, a client of a server through the SDK.

Nothing is imported here, so ``shells mcp`` never loads the control layer.
"""
