"""The demo logins `make run` creates and `manage.py serve` prints (embedded mode only)."""

from __future__ import annotations

# (username, password, what it shows). Local demo only: `manage.py demo` refuses DEBUG off.
DEMO_LOGINS: list[tuple[str, str, str]] = [
    ("demo", "demo-livecharts", "a viewer in the operators group"),
    ("admin", "admin-livecharts", "staff: sees every stream, opens /admin/"),
]
