"""Cross-site request forgery: every console POST carries a token the attacker's page cannot know.

Signed in, the token is the session's own (``console_sessions.csrf_token``), in a hidden form field.
Before sign-in there is no session, so the sign-in form double-submits: ``GET /sign-in`` sets a random
token in the short-lived ``iotd_csrf`` cookie (HttpOnly, SameSite=Strict) and puts the same value in the
form; the POST must carry both, equal. Tokens are compared in constant time. SameSite=Strict on every
console cookie is the second line: a cross-site form post arrives without them.
"""

from __future__ import annotations

import hmac

PRE_SESSION_COOKIE = "iotd_csrf"
PRE_SESSION_MAX_AGE_S = 3600
FIELD = "csrf_token"
REFUSED = ("This form could not be accepted: its security token is missing or out of date. Go back, reload the"
           " page and send the form again.")


def matches(expected: str | None, given: object) -> bool:
    """Whether the form's token ``given`` is the expected one (both present, equal, compared in constant time)."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
