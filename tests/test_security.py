"""Security and operations: request ids, CORS, rate limiting, no internals in errors, no archive from requests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import CRS_UTM, utm_box

from service import create_app
from service.security import RequestIdFilter
from stats.errors import ConfigError
from stats.settings import Settings

BODY = {"geometry": {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}, "crs": CRS_UTM,
        "time": {"from": "2023-01-01", "to": "2023-12-31"}, "bands": ["B04"]}


def test_request_id_is_echoed_or_made(simple_archive: Path) -> None:
    """A plain X-Request-ID comes back unchanged; a missing or odd one is replaced by a new id."""
    client = create_app({"archive": str(simple_archive)}).test_client()
    assert client.get("/health", headers={"X-Request-ID": "job-42.a"}).headers["X-Request-ID"] == "job-42.a"
    made = client.get("/health", headers={"X-Request-ID": "bad id; <script>"}).headers["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()


def test_log_records_carry_the_request_id(simple_archive: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The access log line of a request has its request id."""
    app = create_app({"archive": str(simple_archive)})
    handler_filter = RequestIdFilter()
    logging.getLogger("polyfis.access").addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="polyfis.access"):
            app.test_client().get("/health", headers={"X-Request-ID": "trace-7"})
    finally:
        logging.getLogger("polyfis.access").removeFilter(handler_filter)
    (record,) = [r for r in caplog.records if r.name == "polyfis.access"]
    assert record.request_id == "trace-7" and record.getMessage() == "GET /health 200"


def test_cors_only_for_configured_origins(simple_archive: Path) -> None:
    """Configured origins get CORS headers (and preflight answers); others and the default get none."""
    client = create_app({"archive": str(simple_archive), "cors_origins": "https://fields.example"}).test_client()
    ok = client.get("/health", headers={"Origin": "https://fields.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://fields.example"
    assert "Access-Control-Allow-Origin" not in client.get("/health", headers={"Origin": "https://evil.example"}).headers
    preflight = client.options("/api/v1/timeseries", headers={
        "Origin": "https://fields.example", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://fields.example"
    default = create_app({"archive": str(simple_archive)}).test_client()
    assert "Access-Control-Allow-Origin" not in default.get("/health", headers={"Origin": "https://a.example"}).headers


def test_rate_limit_gives_json_429(simple_archive: Path) -> None:
    """Past POLYFIS_RATE_LIMIT a client gets a JSON 429 with a retry hint."""
    client = create_app({"archive": str(simple_archive), "rate_limit": "2/minute"}).test_client()
    assert [client.get("/health").status_code for _ in range(3)] == [200, 200, 429]
    error = client.get("/health").json["error"]
    assert error["status"] == 429 and "retry later" in error["message"]


def test_archive_cannot_come_from_a_request(simple_archive: Path) -> None:
    """No request field selects an archive, path or URL: such fields are rejected as unknown."""
    client = create_app({"archive": str(simple_archive)}).test_client()
    for field in ("archive", "href", "url", "path"):
        response = client.post("/api/v1/timeseries", json={**BODY, field: "/etc"})
        assert response.status_code == 400 and f"unknown fields ['{field}']" in response.json["error"]["message"]
    response = client.get("/ogc/fis", query_string={"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05",
                                                    "BBOX": "0,0,1,1", "ARCHIVE": "/etc"})
    assert response.status_code == 400


def test_unexpected_error_is_a_generic_500_without_internals(simple_archive: Path, monkeypatch) -> None:
    """A bug inside the engine answers a JSON 500 with no traceback, no path, no exception text."""
    import stats.pipeline

    def boom(*args, **kwargs):
        raise RuntimeError(f"secret detail in {simple_archive}")

    monkeypatch.setattr(stats.pipeline, "_collect", boom)
    response = create_app({"archive": str(simple_archive)}).test_client().post("/api/v1/timeseries", json=BODY)
    text = response.get_data(as_text=True)
    assert response.status_code == 500 and response.json["error"]["message"] == "internal server error"
    assert "Traceback" not in text and "secret" not in text and str(simple_archive) not in text


def test_scene_errors_do_not_leak_server_paths(simple_archive: Path) -> None:
    """A per-date read error names the scene and band, not the file path on the server."""
    (simple_archive / "items" / "T1_20230704" / "B04.tif").unlink()
    data = create_app({"archive": str(simple_archive)}).test_client().post("/api/v1/timeseries", json=BODY).json
    (error,) = [d["error"] for d in data["series"] if "error" in d]
    assert "T1_20230704" in error and "B04" in error and str(simple_archive) not in error


def test_settings_are_validated_once(monkeypatch) -> None:
    """Bad POLYFIS_* values stop the app at start-up with the variable's name."""
    with pytest.raises(ConfigError, match=r"POLYFIS_MAX_PIXELS: expected a number, got 'lots'"):
        Settings.from_env({"POLYFIS_MAX_PIXELS": "lots"})
    with pytest.raises(ConfigError, match=r"POLYFIS_AUTH_CLIENTS: entry 'nocolon' is not 'id:secret'"):
        Settings.from_env({"POLYFIS_AUTH_CLIENTS": "nocolon"})
    with pytest.raises(ConfigError, match=r"POLYFIS_TIME_BUDGET_S: expected a positive number"):
        Settings.from_env({"POLYFIS_TIME_BUDGET_S": "0"})
    assert Settings.from_env({"POLYFIS_TIME_BUDGET_S": "2.5"}).time_budget_s == 2.5


def test_cors_preflight_passes_when_auth_is_on(simple_archive: Path) -> None:
    """A browser's OPTIONS preflight carries no token; it must not get 401, or no browser client can call."""
    client = create_app({"archive": str(simple_archive), "cors_origins": "*", "auth_clients": "a:b"}).test_client()
    preflight = client.options("/api/v1/statistics", headers={"Origin": "https://x.example",
                                                               "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://x.example")
    assert client.post("/api/v1/statistics", json={}).status_code == 401


def _token(client, client_id: str = "app", secret: str = "secret") -> str:
    response = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                 "client_secret": secret})
    assert response.status_code == 200, response.json
    return str(response.json["access_token"])


def test_a_token_must_name_a_configured_client(simple_archive: Path) -> None:
    """A JWT signed with the server's key but for a client not configured (never, or no longer), without its
    ``sub``, ``iat`` or ``exp``, with a payload that is no claims object, or signed another way is a 401."""
    import time

    import jwt

    key = "shared-key-of-thirty-two-bytes-or-more"
    settings = {"archive": str(simple_archive), "auth_clients": "app:secret", "auth_key": key}
    client = create_app(settings).test_client()
    good = _token(client)
    assert client.get("/api/v1/batch", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    now = int(time.time())
    timed = {"iat": now, "exp": now + 60}
    forgeries = [jwt.encode(claims, key, algorithm="HS256") for claims in (
        {"sub": "ghost", **timed}, {"sub": "", **timed}, {"sub": None, **timed}, {"sub": ["app"], **timed}, timed,
        {"sub": "app"}, {"sub": "app", "iat": now}, {"sub": "app", "exp": now + 60})]
    forgeries += [jwt.api_jws.encode(payload, key, algorithm="HS256") for payload in (b'"app"', b'["app"]', b"42",
                                                                                         b"null")]
    forgeries += [jwt.encode({"sub": "app", **timed}, key, algorithm="HS512"),
                  jwt.encode({"sub": "app", **timed}, None, algorithm="none"),
                  jwt.encode({"sub": "app", **timed}, "another-key-of-thirty-two-bytes-or-more", algorithm="HS256")]
    for forged in forgeries:
        response = client.get("/api/v1/batch", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401, jwt.decode(forged, options={"verify_signature": False})
        assert response.json["error"]["message"] == "Authorization: invalid token"
    assert client.get("/api/v1/batch", headers={
        "Authorization": f"Bearer {jwt.encode({'sub': 'app', **timed}, key, algorithm='HS256')}"}).status_code == 200


def test_removing_a_client_revokes_its_tokens(simple_archive: Path) -> None:
    """Workers sharing POLYFIS_AUTH_KEY: a server whose clients no longer include 'old' refuses its tokens."""
    before = create_app({"archive": str(simple_archive), "auth_clients": "old:pw,app:secret",
                         "auth_key": "k" * 32}).test_client()
    old, app = _token(before, "old", "pw"), _token(before)
    after = create_app({"archive": str(simple_archive), "auth_clients": "app:secret", "auth_key": "k" * 32}).test_client()
    assert after.get("/api/v1/batch", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert after.get("/api/v1/batch", headers={"Authorization": f"Bearer {app}"}).status_code == 200


def test_tokens_are_jwts_naming_the_client_with_their_lifetime(simple_archive: Path) -> None:
    """A token is an HS256 JWT signed with POLYFIS_AUTH_KEY whose sub and azp are the client id and whose exp is
    iat + POLYFIS_TOKEN_TTL."""
    import time

    import jwt

    key = "a-signing-key-of-thirty-two-bytes-or-more"
    client = create_app({"archive": str(simple_archive), "auth_clients": "app:secret", "auth_key": key,
                         "token_ttl": 900}).test_client()
    before = int(time.time())
    token = _token(client)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, key, algorithms=["HS256"])
    assert set(claims) == {"sub", "azp", "iat", "exp"} and claims["sub"] == claims["azp"] == "app"
    assert before <= claims["iat"] <= int(time.time()) and claims["exp"] == claims["iat"] + 900


def test_with_auth_off_the_token_route_answers_and_any_token_passes(simple_archive: Path) -> None:
    """Without clients, /oauth/token gives a token for whichever client asks (sentinelhub-py always asks), and
    the data routes take any token or none."""
    import jwt

    client = create_app({"archive": str(simple_archive), "auth_key": "k" * 32}).test_client()
    token = _token(client, "whoever", "whatever")
    assert jwt.decode(token, "k" * 32, algorithms=["HS256"])["sub"] == "whoever"
    anonymous = client.post("/oauth/token", data={"grant_type": "client_credentials"}).json["access_token"]
    assert jwt.decode(anonymous, "k" * 32, algorithms=["HS256"])["sub"] == "anonymous"
    assert client.post("/oauth/token", data={"grant_type": "password"}).status_code == 400
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer not-a-token"}, {}):
        assert client.get("/api/v1/batch", headers=headers).status_code == 200


def test_sentinelhub_py_decodes_the_token_of_any_client_id(simple_archive: Path) -> None:
    """sentinelhub-py reads the token payload with the plain base64 alphabet (dropping '-' and '_'), so the
    payload is written never to need them: SentinelHubSession.info() decodes a token of an id with '?', '>' and
    '~', whose plain JSON would encode with them, and caching the session reads its azp."""
    import base64
    import json
    import time

    from sentinelhub import SentinelHubDownloadClient, SentinelHubSession

    odd = "a?b>c~d?>~"
    plain = base64.urlsafe_b64encode(json.dumps({"sub": odd, "azp": odd}, separators=(",", ":")).encode())
    assert b"-" in plain or b"_" in plain  # the case this guards against
    client = create_app({"archive": str(simple_archive), "auth_clients": f"{odd}:pw"}).test_client()
    token = _token(client, odd, "pw")
    session = SentinelHubSession.from_token({"access_token": token, "expires_at": time.time() + 600})
    assert session.info()["sub"] == session.info()["azp"] == odd
    SentinelHubDownloadClient.cache_session(session)
    assert client.get("/api/v1/batch", headers={"Authorization": f"Bearer {token}"}).status_code == 200
