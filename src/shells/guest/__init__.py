"""The in-shell agent and its wire protocol: stdlib only, because it runs inside the sandbox."""
