"""The host's browser page: the shared static site of :mod:`rdesk.site.static`, re-exported
under the name the host's server and its tests import."""

from rdesk.site.static import (
    CONTENT_SECURITY_POLICY,
    CONTENT_TYPES,
    StaticSite,
    _load_files,
    forbidden,
    origin_allowed,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CONTENT_TYPES",
    "StaticSite",
    "_load_files",
    "forbidden",
    "origin_allowed",
]
