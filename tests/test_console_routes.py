"""The console's routes through the real app: files, headers, the key check; no browser."""

from __future__ import annotations

import re

from api import console
from tests.conftest import ROLE_KEYS


def test_the_console_page_is_served_with_a_strict_content_security_policy(api):
    res = api.get("/console", headers={"Authorization": ""})  # the page itself needs no key
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert '<script type="module" src="/console/app.js">' in res.text


def test_every_file_the_console_refers_to_is_served_with_its_type(api):
    index = api.get("/console").text
    wanted = set(re.findall(r'(?:src|href)="/console/([\w./-]+)"', index))
    for path in console.FILES.values():
        if path.suffix == ".js":
            wanted |= {m for m in re.findall(r'from "\./([\w./-]+)"', path.read_text())}
    assert {"app.js", "console.css", "agent.js", "sales.js", "marketing.js"} <= wanted
    for name in wanted:
        res = api.get(f"/console/{name}")
        assert res.status_code == 200, name
        assert res.headers["content-type"].split(";")[0] in {
            "text/javascript", "text/css", "image/svg+xml"}, name


def test_only_console_files_are_served(api):
    for path in ("/console/nothing.js", "/console/../api/app.py", "/console/%2e%2e/api/console.py",
                 "/console/..%2fconsole.py", "/console/static/console/app.js"):
        res = api.get(path)
        assert res.status_code == 404, path
        assert res.json()["error"]["code"] == "not_found"
    assert api.get("/console/", follow_redirects=False).headers["location"] == "/console"


def test_whoami_tells_the_roles_of_the_key_and_refuses_others(api):
    key = next(k for k, roles in ROLE_KEYS.items() if roles == ["sales"])
    res = api.get("/console/whoami", headers={"Authorization": f"Bearer {key}"})
    assert res.status_code == 200 and res.json()["roles"] == ["sales"]
    assert key not in res.text and res.headers["cache-control"] == "no-store"
    assert api.get("/console/whoami", headers={"Authorization": ""}).status_code == 401
    assert api.get("/console/whoami",
                   headers={"Authorization": "Bearer nope"}).json()["error"]["code"] == "unauthorized"


def test_the_console_stays_out_of_the_api_schema(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
