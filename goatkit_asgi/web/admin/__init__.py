"""The plugin admin: a mountable Starlette app with HTML pages and a JSON API.

``Mount("/admin/plugins", platform.admin_app(auth=..., secret_key=...))``; see docs/admin.md.
"""

from __future__ import annotations

from .app import DEFAULT_CSRF_MAX_AGE, DEFAULT_MAX_UPLOAD_BYTES, create_admin_app
from .security import AuthCallable

__all__ = ["DEFAULT_CSRF_MAX_AGE", "DEFAULT_MAX_UPLOAD_BYTES", "AuthCallable", "create_admin_app"]
