"""A bearer-token guard for views that show protected health information (PHI).

Such views are off unless a token is configured (STREAM_EDITS_WEB_TOKEN): they then answer
403 with a JSON reason saying they are disabled (403, not 404: the operator sees why, and the
answer is the same for every path, so it reveals nothing about any member). With a token, a
request must carry `Authorization: Bearer <token>`; without it, with another scheme or with a
wrong token it gets 401 with `WWW-Authenticate: Bearer`. The comparison is `hmac.compare_digest`
on bytes (constant time in the token's content). The token is never logged, and no answer
repeats what a request presented.

Usage in a view: `denied = guard.deny(self, request)`; return `denied` when it is not None.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from faust.web import Request, Response, View
from pydantic import SecretStr

MIN_TOKEN_LENGTH = 16
DISABLED = "look-ups are disabled: STREAM_EDITS_WEB_TOKEN is not set on this worker"
UNAUTHORIZED = "a valid bearer token is required (Authorization: Bearer <token>)"
CHALLENGE = 'Bearer realm="stream-edits"'


class TokenTooShort(ValueError):
    """The configured token is too short to guard PHI (its value is never in the message)."""


@dataclass(frozen=True)
class BearerGuard:
    """Checks requests against one bearer token; None disables the guarded views."""

    token: SecretStr | None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise TokenTooShort(
                f"STREAM_EDITS_WEB_TOKEN must be at least {MIN_TOKEN_LENGTH} characters"
            )

    @property
    def enabled(self) -> bool:
        """True when a token is configured."""
        return self.token is not None

    def authorized(self, authorization: str | None) -> bool:
        """True when an Authorization header value presents the token with the Bearer scheme."""
        if self.token is None or authorization is None:
            return False
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        expected = self.token.get_secret_value().encode()
        return hmac.compare_digest(presented.strip().encode(), expected)

    def deny(self, view: View, request: Request) -> Response | None:
        """The answer refusing `request` (403 disabled, 401 unauthorized), or None to serve it."""
        if self.token is None:
            return view.json({"error": DISABLED}, status=403)
        if not self.authorized(request.headers.get("Authorization")):
            return view.json(
                {"error": UNAUTHORIZED}, status=401, headers={"WWW-Authenticate": CHALLENGE}
            )
        return None
