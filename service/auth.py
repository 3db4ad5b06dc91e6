"""OAuth2 client credentials: ``POST /oauth/token`` and bearer tokens on the data routes.

Auth is on when clients are configured (``POLYFIS_AUTH_CLIENTS="id:secret,id2:secret2"``). Tokens are JWTs
signed with HS256 (PyJWT; key ``POLYFIS_AUTH_KEY``, which every worker behind one load balancer must share)
whose claims are ``sub`` and ``azp`` (the client id), ``iat`` and ``exp`` (``POLYFIS_TOKEN_TTL`` seconds later),
so that clients which read the token (sentinelhub-py's ``SentinelHubSession.info()``) can. A token's ``sub``
must be a client configured on the server that checks it (removing a client revokes its tokens). Tokens are
checked on ``/api/v1/timeseries``, ``/api/v1/statistics``, every ``/api/v1/batch`` route, ``/api/v1/render``,
``/ogc/fis`` and the Catalog API's collections, items and search. FIS also accepts a configured instance id
(``POLYFIS_FIS_INSTANCES``) in its path as the key, as Sentinel Hub's OGC services do. Secrets are compared in
constant time.

With auth off, ``/oauth/token`` still answers (clients such as sentinelhub-py always fetch a token), with a
token for whichever client id is given, and no route checks tokens.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from typing import Any

import jwt
from flask import Blueprint, Flask, Response, current_app, request

from stats.errors import MalformedRequestError, UnauthorizedError

from .render import json_response

bp = Blueprint("auth", __name__)

PROTECTED = ("timeseries.", "statistical.", "batch.", "fis.", "imagery.", "catalog.")
#: Endpoints of the protected blueprints open to all (the Catalog API's landing page and conformance, as
#: Sentinel Hub's are: sentinelhub-py reads them without a token).
PUBLIC = ("catalog.landing", "catalog.conformance")
ALGORITHM = "HS256"
#: The client id of a token asked for without one while auth is off.
ANONYMOUS = "anonymous"


class _PlainBase64Encoder(json.JSONEncoder):
    """JSON whose base64url form has no ``-`` or ``_``: sentinelhub-py decodes the token payload with the plain
    base64 alphabet, which drops those two characters. In ASCII JSON only the characters ``>``, ``?``, ``~`` and
    DEL can give them, and only inside strings, where they are written as ``\\u`` escapes instead."""

    def encode(self, o: Any) -> str:
        text = super().encode(o)
        for char in ">?~\x7f":
            text = text.replace(char, f"\\u{ord(char):04x}")
        return text


def issue_token(client_id: str, key: str, ttl: int, now: float | None = None) -> str:
    """A signed JWT for ``client_id``, valid ``ttl`` seconds from ``now`` (the current time by default)."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": client_id, "azp": client_id, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, key, algorithm=ALGORITHM, json_encoder=_PlainBase64Encoder)


def token_subject(token: str, key: str, max_age: int) -> str:
    """The client id (``sub``) of a valid token signed with ``key``, before its ``exp`` and at most
    ``max_age`` seconds after its ``iat`` (so that lowering ``POLYFIS_TOKEN_TTL`` shortens the tokens given out).

    :raises UnauthorizedError: for an expired, malformed or forged token.
    """
    expired = UnauthorizedError("Authorization: the token has expired; get a new one from POST /oauth/token")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["sub", "iat", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise expired from exc
    except jwt.InvalidTokenError as exc:
        raise UnauthorizedError("Authorization: invalid token") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str):
        raise UnauthorizedError("Authorization: invalid token")
    if time.time() > claims["iat"] + max_age:
        raise expired
    return subject


def _client_credentials() -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise UnauthorizedError("Authorization: malformed Basic credentials") from exc
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return request.form.get("client_id", ""), request.form.get("client_secret", "")


@bp.post("/oauth/token")
def token() -> Response:
    """Client-credentials grant: form ``grant_type=client_credentials`` with the client id and secret."""
    settings = current_app.extensions["polyfis.settings"]
    grant = request.form.get("grant_type")
    if grant != "client_credentials":
        raise MalformedRequestError(f"grant_type: got {grant!r:.80}; expected 'client_credentials' (form encoded)")
    client_id, secret = _client_credentials()
    if settings.clients:
        expected = settings.clients.get(client_id, "")
        # compare even for unknown clients, so timing does not tell which ids exist
        if not hmac.compare_digest(secret.encode(), expected.encode()) or not expected:
            raise UnauthorizedError("invalid client credentials")
    access = issue_token(client_id or ANONYMOUS, settings.auth_key, settings.token_ttl)
    return json_response({"access_token": access, "token_type": "Bearer", "expires_in": settings.token_ttl})


def check_request() -> None:
    """Before each protected request: a valid bearer token, or a configured FIS instance id."""
    settings = current_app.extensions["polyfis.settings"]
    endpoint = request.endpoint or ""
    if not settings.clients or request.method == "OPTIONS" or not endpoint.startswith(PROTECTED) \
            or endpoint in PUBLIC:
        return  # CORS preflights carry no credentials and return no data
    if request.endpoint == "fis.fis":
        instance = (request.view_args or {}).get("instance") or ""
        if any(hmac.compare_digest(instance.encode(), known.encode()) for known in settings.fis_instances):
            return
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise UnauthorizedError("Authorization: missing bearer token; get one from POST /oauth/token")
    subject = token_subject(header[7:].strip(), settings.auth_key, settings.token_ttl)
    if subject not in settings.clients:
        # signed with this key, but for no client configured here (removed since, or another server's)
        raise UnauthorizedError("Authorization: invalid token")


def register(app: Flask) -> None:
    """Install the token route and the check."""
    app.register_blueprint(bp)
    app.before_request(check_request)
