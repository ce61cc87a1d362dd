"""The web dashboard (`memlane serve` at /) driven in a real headless Chromium through Selenium: sign in with a
key, scopes, search with scores, edit (history grows), delete and bulk delete with confirmation, provenance,
the graph view, jobs with retry, a phone-width layout, and a second tenant's key that sees none of the first's
scopes. Every request the browser makes is recorded: all go to the server's origin. A screenshot of each page
is saved under pytest's tmp (and under $MEMLANE_SCREENSHOTS, e.g. docs/screenshots, when set).

Needs the Debian packages chromium and chromium-driver (the Makefile installs them); skipped without them,
except in CI (MEMLANE_CI set by .ci/run), where that fails.
Nothing here downloads a browser."""
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from fakeservers import Answer, FakeServer

from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    why = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
    if os.environ.get("MEMLANE_CI"):  # CI (.ci/run): the Makefile installed them, so their absence is a failure
        pytest.fail(why, pytrace=False)
    pytest.skip(why, allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SIZE = (1200, 800)


def graph_reply():
    rels = [("Alice", "works_at", "Acme"), ("Alice", "lives_in", "Lisbon"), ("Acme", "based_in", "Lisbon")]
    return Answer(data={
        "memory": [{"event": "ADD", "id": None, "text": "Alice works at Acme in Lisbon", "source_messages": [1],
                    "attributed_to": "user"}],
        "entities": [{"name": n, "type": "thing"} for n in ("Acme", "Alice", "Lisbon")],
        "relations": [{"source": s, "relationship": r, "target": t, "source_messages": [1]} for s, r, t in rels],
        "ended_relations": []})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("dashboard-home")
    keys = KeyStore(home / "keys.db")
    made = {"acme": keys.create("acme", admin=True)[0], "globex": keys.create("globex", admin=True)[0]}
    keys.close()
    llm = FakeServer().start()
    config = {"vector_store": {"provider": "sqlite", "config": {}}, "graph_store": {"provider": "sqlite"},
              "job_max_attempts": 1,
              "llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{llm.url}/v1"}}}
    try:
        with serve_in_thread(ServerSettings(home=str(home), config=config, rate_limit=0)) as url:
            seed(url, made, llm)
            yield url, made
    finally:
        llm.stop()


def seed(url, made, llm):
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {made['acme']}"}, timeout=60) as c:
        def add(messages, **kw):
            r = c.post("/api/memories", json={"messages": messages, "infer": False, **kw})
            assert r.status_code == 200, r.text
            return r.json()
        add("I drink green tea every morning", user_id="alice", metadata={"topic": "food"})
        add("My sister lives in Porto", user_id="alice", metadata={"topic": "family"})
        add("Allergic to peanuts", user_id="alice", metadata={"topic": "health"})
        for i in range(23):
            add(f"Filler note number {i}", user_id="alice", metadata={"topic": "misc", "n": i})
        add("Prefers concise answers", agent_id="helper")
        add("Ticket 42 is about billing", run_id="run-7", user_id="bob")
        llm.script(graph_reply())
        r = c.post("/api/memories", json={"user_id": "alice", "timestamp": "2026-01-10T09:00:00Z", "messages": [
            {"role": "user", "content": "Hi, a quick update about me."},
            {"role": "user", "content": "I started at Acme last week, their office is in Lisbon."},
            {"role": "assistant", "content": "Congratulations on the new job!"}]})
        assert r.status_code == 200 and r.json()["relations"], r.text
        llm.script(Answer(text="not json"), Answer(text="not json"), Answer(text="not json"))
        job = c.post("/api/memories", json={"messages": "this one fails", "user_id": "carol",
                                            "background": True}).json()
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {made['globex']}"}, timeout=60) as c:
        assert c.post("/api/memories", json={"messages": "Globex secret plan", "user_id": "zed",
                                             "infer": False}).status_code == 200
    made["failed_job"] = job["job_id"]


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={SIZE[0]},{SIZE[1]}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(*SIZE)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    dirs = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("MEMLANE_SCREENSHOTS"):
        dirs.append(Path(os.environ["MEMLANE_SCREENSHOTS"]))
        dirs[-1].mkdir(parents=True, exist_ok=True)

    def shot(driver, name, show=None):
        if show is None:
            driver.execute_script("window.scrollTo(0, 0)")
        else:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", show)
        time.sleep(0.15)  # let the last paint land
        for d in dirs:
            assert driver.save_screenshot(str(d / f"{name}.png"))
    shot.dirs = dirs
    return shot


# ------------------------------------------------------------------ helpers

def wait(driver, css, timeout=15):
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, css))


def wait_for(driver, predicate, timeout=15, what="condition"):
    try:
        return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(predicate)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}") from None


def texts(driver, css):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def go(driver, url, hash_):
    driver.get(f"{url}/{hash_}")


def sign_in(driver, url, key):
    driver.get(url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(url + "/")
    field = wait(driver, "#key")
    assert field == driver.switch_to.active_element  # focused: type the key straight away
    field.send_keys(key, Keys.ENTER)
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#scopes .scope-row"), what="the scopes table")


def confirm(driver, ok=True, shot=None):
    wait_for(driver, lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is not None,
             what="the confirm dialog")
    if shot:
        shot(driver, "07-delete-confirm")
    driver.find_element(By.ID, "confirm-ok" if ok else "confirm-cancel").click()


def find_row(driver, text):
    return next((r for r in driver.find_elements(By.CSS_SELECTOR, "#memories .memory-row") if text in r.text), None)


def row_of(driver, text):
    row = find_row(driver, text)
    if row is not None:
        return row
    raise AssertionError(f"no row with {text!r}: {texts(driver, '#memories .memory-row')} "
                         f"(status: {driver.find_element(By.ID, 'status').text!r})")


# ------------------------------------------------------------------ the flows

def test_page_needs_no_key_and_serves_only_its_own_origin(site):
    url, _ = site
    r = httpx.get(url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for asset in ("app.js", "app.css", "favicon.svg"):
        a = httpx.get(f"{url}/ui/{asset}")
        assert a.status_code == 200 and "default-src 'self'" in a.headers["content-security-policy"]
        body = a.text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace names, it is not fetched
        assert "http://" not in body and "https://" not in body and "//" + "cdn" not in body
    assert httpx.get(url + "/ui/../app.py").status_code == 404
    assert httpx.get(url + "/ui/nope.js").status_code == 404
    assert httpx.get(url + "/api/users").status_code == 401  # the page is public, the API is not
    assert "/" not in httpx.get(url + "/openapi.json").json()["paths"]


def test_sign_in_scopes_filter_and_sort(site, browser, shots):
    url, made = site
    browser.get(url + "/")
    wait(browser, "#login-form")
    assert wait(browser, "#login").is_displayed() and not browser.find_elements(By.CSS_SELECTOR, "#scopes")
    shots(browser, "01-sign-in")
    wait(browser, "#key").send_keys("mlk_wrong", Keys.ENTER)
    wait_for(browser, lambda d: "refused" in d.find_element(By.ID, "login-error").text, what="a refusal")
    sign_in(browser, url, made["acme"])
    assert browser.execute_script("return sessionStorage.getItem('memlane.key')") == made["acme"]
    assert "tenant: acme" in browser.find_element(By.ID, "tenant").text
    names = texts(browser, "#scopes .scope-row td:nth-child(2)")
    assert {"alice", "helper", "run-7", "bob"} <= set(names) and "zed" not in names
    alice = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#scopes .scope-row") if "alice" in r.text)
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {made['acme']}"}) as c:
        count = next(u for u in c.get("/api/users").json()["results"] if u["name"] == "alice")["total_memories"]
    assert count >= 27 and f" {count} " in alice.text  # 26 seeded, 1 inferred (and its episodic memories)
    shots(browser, "02-scopes")
    Select(browser.find_element(By.ID, "scope-type")).select_by_value("agent")
    assert texts(browser, "#scopes .scope-row td:nth-child(2)") == ["helper"]
    Select(browser.find_element(By.ID, "scope-type")).select_by_value("")
    browser.find_element(By.ID, "scope-filter").send_keys("al")
    assert texts(browser, "#scopes .scope-row td:nth-child(2)") == ["alice"]
    browser.find_element(By.ID, "scope-filter").clear()
    browser.find_element(By.ID, "scope-filter").send_keys(Keys.SPACE, Keys.BACKSPACE)
    browser.find_element(By.CSS_SELECTOR, "button[data-sort=total_memories]").click()
    counts = [int(t) for t in texts(browser, "#scopes .scope-row td:nth-child(3)")]
    assert counts == sorted(counts, reverse=True) and texts(browser, "#scopes .scope-row td:nth-child(2)")[0] == "alice"
    browser.find_element(By.CSS_SELECTOR, "button[data-sort=name]").click()
    names = texts(browser, "#scopes .scope-row td:nth-child(2)")
    assert names == sorted(names)


def test_memories_paginate_search_filter_edit_and_history(site, browser, shots):
    url, made = site
    sign_in(browser, url, made["acme"])
    browser.find_element(By.LINK_TEXT, "alice").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#memories .memory-row")) == 20,
             what="a page of 20")
    assert "1–20 of 27" in browser.find_element(By.CSS_SELECTOR, ".pager").text
    browser.find_element(By.XPATH, "//button[contains(., 'Next')]").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#memories .memory-row")) == 7,
             what="the second page")
    shots(browser, "03-memories")

    search = browser.find_element(By.ID, "search")
    search.send_keys("what does she drink in the morning", Keys.ENTER)
    wait_for(browser, lambda d: "results for" in d.find_element(By.ID, "summary").text, what="search results")
    first = browser.find_element(By.CSS_SELECTOR, "#memories .memory-row")
    assert "green tea" in first.text
    scores = [float(s) for s in texts(browser, "#memories td.score")]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    shots(browser, "04-search")

    search.clear()
    browser.find_element(By.ID, "filters").send_keys("topic=health", Keys.ENTER)
    wait_for(browser, lambda d: texts(d, "#memories .memory-row td.text") == ["Allergic to peanuts"],
             what="the metadata filter")

    row = row_of(browser, "Allergic to peanuts")
    row.find_element(By.CSS_SELECTOR, "button.edit").click()
    text = wait(browser, "textarea.edit-text")
    assert text == browser.switch_to.active_element
    text.clear()
    text.send_keys("Severely allergic to peanuts")
    meta = browser.find_element(By.CSS_SELECTOR, "textarea.edit-metadata")
    meta.clear()
    meta.send_keys('{"topic": "health", "severity": "high"}')
    shots(browser, "05-edit")
    browser.find_element(By.CSS_SELECTOR, "button.save").click()
    wait_for(browser, lambda d: "Severely allergic" in (getattr(find_row(d, "peanuts"), "text", "")),
             what="the saved row")
    assert "severity" in row_of(browser, "peanuts").text

    row_of(browser, "peanuts").find_element(By.CSS_SELECTOR, "td.text a").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history .history-event")) == 2,
             what="two history events")
    events = texts(browser, "#history .history-event .event")
    assert events == ["ADD", "UPDATE"]
    update = browser.find_elements(By.CSS_SELECTOR, "#history .history-event")[1]
    inserted = " ".join(e.text for e in update.find_elements(By.CSS_SELECTOR, ".diff ins")).split()
    assert inserted == ["Severely", "allergic"]
    assert [e.text for e in update.find_elements(By.CSS_SELECTOR, ".diff del")] == ["Allergic"]
    assert "severity" in update.find_element(By.CSS_SELECTOR, ".meta-diff").text
    shots(browser, "06-memory-history")

    browser.back()
    wait(browser, "#memories .memory-row")


def test_delete_with_confirmation_and_bulk_delete(site, browser, shots):
    url, made = site
    sign_in(browser, url, made["acme"])
    go(browser, url, "#/scope/user/alice")
    browser.find_element(By.ID, "filters")
    wait(browser, "#memories .memory-row")
    browser.find_element(By.ID, "filters").send_keys("topic=family", Keys.ENTER)
    wait_for(browser, lambda d: texts(d, "#memories .memory-row td.text") == ["My sister lives in Porto"],
             what="the family memory")
    row_of(browser, "Porto").find_element(By.CSS_SELECTOR, "button.delete").click()
    confirm(browser, ok=False, shot=shots)  # cancelled: still there
    time.sleep(0.2)
    assert texts(browser, "#memories .memory-row td.text") == ["My sister lives in Porto"]
    row_of(browser, "Porto").find_element(By.CSS_SELECTOR, "button.delete").click()
    confirm(browser)
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#memories .memory-row"), what="the delete")

    f = browser.find_element(By.ID, "filters")
    f.clear()
    f.send_keys("topic=misc", Keys.ENTER)
    wait_for(browser, lambda d: "23 memories" in d.find_element(By.ID, "summary").text, what="23 fillers")
    boxes = browser.find_elements(By.CSS_SELECTOR, "#memories tbody input[type=checkbox]")[:3]
    for box in boxes:
        box.send_keys(Keys.SPACE)  # the keyboard works as the mouse does
    bulk = browser.find_element(By.ID, "bulk-delete")
    assert bulk.text == "Delete selected (3)"
    bulk.click()
    confirm(browser)
    wait_for(browser, lambda d: "20 memories" in d.find_element(By.ID, "summary").text, what="the bulk delete")
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {made['acme']}"}) as c:
        assert c.post("/api/memories/list", json={"user_id": "alice", "filters": {"topic": "misc"}}).json()[
            "total"] == 20


def test_provenance_shows_the_conversation(site, browser, shots):
    url, made = site
    sign_in(browser, url, made["acme"])
    go(browser, url, "#/scope/user/alice")
    wait(browser, "#search").send_keys("Acme Lisbon job", Keys.ENTER)
    wait_for(browser, lambda d: "results for" in d.find_element(By.ID, "summary").text, what="search results")
    row_of(browser, "Alice works at Acme").find_element(By.CSS_SELECTOR, "td.text a").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#provenance li.source"), what="provenance")
    source = texts(browser, "#provenance li.source")
    assert len(source) == 1 and "I started at Acme last week" in source[0]
    context = texts(browser, "#provenance li.context")
    assert len(context) == 2 and "quick update" in context[0] and "Congratulations" in context[1]
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#relations li.relation"), what="relations")
    assert any("works_at" in t for t in texts(browser, "#relations li.relation"))
    shots(browser, "08-provenance")


def test_graph_view_now_and_as_of_and_entity_memories(site, browser, shots):
    url, made = site
    sign_in(browser, url, made["acme"])
    go(browser, url, "#/scope/user/alice")
    wait(browser, "#graph-link").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.graph .node")) == 3, what="3 entities")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.graph .edge")) == 3
    node = browser.find_element(By.CSS_SELECTOR, "svg.graph .node[data-name=Acme]")
    node.send_keys(Keys.ENTER)  # keyboard: Tab to an entity, Enter
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#entity-memories li"), what="entity memories")
    assert "Alice works at Acme" in browser.find_element(By.ID, "entity-memories").text
    assert "works_at" in browser.find_element(By.ID, "entity-panel").text
    shots(browser, "09-graph")
    as_of = browser.find_element(By.ID, "as-of")
    browser.execute_script("arguments[0].value = '2025-12-01T00:00'", as_of)
    as_of.submit()
    wait_for(browser, lambda d: d.find_elements(By.ID, "graph-empty"), what="an empty graph before the facts")
    browser.find_element(By.XPATH, "//button[.='Now']").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.graph .node")) == 3, what="the graph again")


def test_jobs_show_status_errors_and_retry(site, browser, shots):
    url, made = site
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {made['acme']}"}) as c:
        for _ in range(300):
            if c.get(f"/api/jobs/{made['failed_job']}").json()["status"] == "failed":
                break
            time.sleep(0.1)
    sign_in(browser, url, made["acme"])
    go(browser, url, "#/scope/user/carol")
    wait(browser, "#memories")
    browser.find_element(By.CSS_SELECTOR, "details.card summary").click()
    browser.find_element(By.ID, "add-text").send_keys("Queued from the dashboard")
    browser.find_element(By.ID, "add-background").click()
    browser.find_element(By.CSS_SELECTOR, "details.card button[type=submit]").click()
    wait_for(browser, lambda d: "Queued" in d.find_element(By.ID, "status").text, what="queued")
    browser.find_element(By.LINK_TEXT, "Jobs").click()
    wait(browser, "#job-id").send_keys(made["failed_job"], Keys.ENTER)
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs .job-row")) == 2, what="two jobs")
    wait_for(browser, lambda d: (d.find_element(By.XPATH, "//button[.='Refresh']").click() or True)
             and d.find_elements(By.CSS_SELECTOR, "#jobs .job-row[data-status=done]"), what="the queued job done")
    failed = browser.find_element(By.CSS_SELECTOR, "#jobs .job-row[data-status=failed]")
    assert failed.find_element(By.CSS_SELECTOR, "td.error").text
    shots(browser, "10-jobs")
    failed.find_element(By.CSS_SELECTOR, "button.retry").click()
    wait_for(browser, lambda d: "Queued again" in d.find_element(By.ID, "status").text
             or "attempt" in d.find_element(By.ID, "status").text.lower(), what="the retry")


def test_phone_width_is_readable(site, browser, shots):
    url, made = site
    sign_in(browser, url, made["acme"])
    browser.set_window_size(390, 844)
    try:
        go(browser, url, "#/scope/user/alice")
        wait(browser, "#memories .memory-row")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone: {width}px"
        shots(browser, "11-phone")
    finally:
        browser.set_window_size(*SIZE)


def test_other_tenant_sees_none_of_the_first(site, browser, shots):
    url, made = site
    sign_in(browser, url, made["globex"])
    names = texts(browser, "#scopes .scope-row td:nth-child(2)")
    assert names == ["zed"]
    assert "tenant: globex" in browser.find_element(By.ID, "tenant").text
    go(browser, url, "#/scope/user/alice")
    wait_for(browser, lambda d: "0 memories" in d.find_element(By.ID, "summary").text, what="an empty scope")
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {made['acme']}"}) as c:
        acme_id = c.post("/api/memories/list", json={"user_id": "alice", "limit": 1}).json()["results"][0]["id"]
    go(browser, url, f"#/memory/{acme_id}")  # another tenant's id: as unknown as any
    wait_for(browser, lambda d: "404" in d.find_element(By.ID, "view").text, what="a 404")
    go(browser, url, "#/")
    wait(browser, "#scopes .scope-row")
    shots(browser, "12-tenant-b")
    browser.find_element(By.ID, "logout").click()
    wait(browser, "#login-form")
    assert browser.execute_script("return sessionStorage.getItem('memlane.key')") is None


def test_every_request_went_to_the_server(site, browser):
    """Over every page the tests above opened (and these, when run alone)."""
    url, made = site
    sign_in(browser, url, made["acme"])
    go(browser, url, "#/graph/user/alice")
    wait(browser, "svg.graph .node")
    seen = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            seen.append(message["params"]["request"]["url"])
    assert seen, "no requests were recorded"
    outside = [u for u in seen if not (u.startswith(url + "/") or u.startswith("data:") or u == "about:blank")]
    assert outside == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "Content Security" in e["message"]]
    assert errors == []
