"""The E2B door: E2B's control plane and its in-sandbox protocol (envd) served over Shells, so code
written for E2B's SDKs runs unchanged (docs/e2b.md). A door like ``api``: it parses, authenticates
and answers in E2B's shapes; every decision is the control layer's."""
