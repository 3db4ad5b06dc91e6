"""OAuth2 client credentials: ``POST /oauth/token`` and bearer tokens on the data routes.

Auth is on when clients are configured (``POLYFIS_AUTH_CLIENTS="id:secret,id2:secret2"``). Tokens are
signed and timestamped with ``itsdangerous`` (key ``POLYFIS_AUTH_KEY``, which every worker behind one
load balancer must share), expire after ``POLYFIS_TOKEN_TTL`` seconds, name their client (``sub``), which must
be a client configured on the server that checks them (removing a client revokes its tokens), and are checked on
``/api/v1/timeseries``, ``/api/v1/statistics``, every ``/api/v1/batch`` route, ``/api/v1/render`` and
``/ogc/fis``. FIS also accepts a configured instance id (``POLYFIS_FIS_INSTANCES``) in its path as the key,
as Sentinel Hub's OGC services do. Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import hmac

from flask import Blueprint, Flask, Response, current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from stats.errors import MalformedRequestError, NotFoundError, UnauthorizedError

from .render import json_response

bp = Blueprint("auth", __name__)

PROTECTED = ("timeseries.", "statistical.", "batch.", "batch_statistical.", "fis.", "imagery.")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.extensions["polyfis.settings"].auth_key, salt="polyfis-token")


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
    if not settings.clients:
        raise NotFoundError("authentication is not enabled on this server; no token is needed")
    grant = request.form.get("grant_type")
    if grant != "client_credentials":
        raise MalformedRequestError(f"grant_type: got {grant!r}; expected 'client_credentials' (form encoded)")
    client_id, secret = _client_credentials()
    expected = settings.clients.get(client_id, "")
    # compare even for unknown clients, so timing does not tell which ids exist
    if not hmac.compare_digest(secret.encode(), expected.encode()) or not expected:
        raise UnauthorizedError("invalid client credentials")
    access = _serializer().dumps({"sub": client_id})
    return json_response({"access_token": access, "token_type": "Bearer", "expires_in": settings.token_ttl})


def check_request() -> None:
    """Before each protected request: a valid bearer token, or a configured FIS instance id."""
    settings = current_app.extensions["polyfis.settings"]
    if not settings.clients or request.method == "OPTIONS" or not (request.endpoint or "").startswith(PROTECTED):
        return  # CORS preflights carry no credentials and return no data
    if request.endpoint == "fis.fis":
        instance = (request.view_args or {}).get("instance") or ""
        if any(hmac.compare_digest(instance.encode(), known.encode()) for known in settings.fis_instances):
            return
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise UnauthorizedError("Authorization: missing bearer token; get one from POST /oauth/token")
    try:
        claims = _serializer().loads(header[7:].strip(), max_age=settings.token_ttl)
    except SignatureExpired as exc:
        raise UnauthorizedError(
            "Authorization: the token has expired; get a new one from POST /oauth/token") from exc
    except BadSignature as exc:
        raise UnauthorizedError("Authorization: invalid token") from exc
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or subject not in settings.clients:
        # signed with this key, but for no client configured here (removed since, or another server's)
        raise UnauthorizedError("Authorization: invalid token")


def register(app: Flask) -> None:
    """Install the token route and the check."""
    app.register_blueprint(bp)
    app.before_request(check_request)
