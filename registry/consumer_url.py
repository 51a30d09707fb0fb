"""A consumer URL's credentials, and the masked form everyone may see. Pure, no I/O.

Credentials hide in three places of a URL: the userinfo (``user:password@``; a user name alone
counts too, e.g. a token passed as the user), the query (``?token=...``) and the fragment. The
masked form replaces each of them by ``***``: the userinfo by ``***:***@`` (or ``***@``), every query
value (and a query part without ``=``, which may be a bare token) by ``***``, a fragment by ``***``.
The path is kept: it names the endpoint (and an MQTT consumer's topic template).

``consumers.url`` stores the masked form; the whole URL, only when the two differ, is encrypted in
``consumers.url_enc``. Masking is idempotent, so a masked URL sent back unchanged is recognised.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def _masked_query(query: str) -> str:
    parts: list[str] = []
    for part in query.split("&"):
        if not part:
            parts.append(part)
        elif "=" in part:
            parts.append(part.split("=", 1)[0] + "=" + MASK)
        else:
            parts.append(MASK)
    return "&".join(parts)


def mask_url(url: str) -> str:
    """``url`` with its userinfo, query values and fragment replaced by ``***`` (unchanged if it has none)."""
    if not has_credentials(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{MASK}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"
    query = _masked_query(parts.query) if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def has_credentials(url: str) -> bool:
    """Whether ``url`` has a part that may hold a credential: userinfo, a query or a fragment."""
    parts = urlsplit(url)
    return "@" in parts.netloc or bool(parts.query) or bool(parts.fragment)


def keeps_a_mask(url: str) -> bool:
    """Whether ``url`` still holds ``***`` where a credential goes (a masked URL that was edited)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    query_values = [p.split("=", 1)[-1] for p in parts.query.split("&")] if parts.query else []
    return MASK in userinfo.split(":") or MASK in query_values or parts.fragment == MASK
