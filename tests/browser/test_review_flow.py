"""A moderator's shift in a real browser: keys, safe viewing, decisions, counts, clusters.

The tests share one server (see conftest.py) and run in file order; each takes its own items.
The last one takes the screenshots docs/review.md shows: into a temporary folder, or, to update
the documentation, into the folder ``MODTOOLS_SCREENSHOTS`` names
(``MODTOOLS_SCREENSHOTS=docs/screenshots make test-browser``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import Site, log_in


def wait_until_loaded(image: Locator, timeout: float = 10) -> None:
    """Wait for an image to finish loading. (wait_for_function would need eval, which the
    Content-Security-Policy rightly refuses; evaluate() does not.)"""
    deadline = time.monotonic() + timeout
    while not image.evaluate("img => img.complete && img.naturalWidth > 0"):
        assert time.monotonic() < deadline, "the image did not load"
        time.sleep(0.05)


def screen_item_id(page: Page) -> str:
    return page.locator("#review-screen").get_attribute("data-item-id") or ""


def test_claim_reveal_and_remove_with_the_keyboard(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "moderator")
    page.goto(site.url + "/review/")
    waiting = int(page.locator("#count-review").inner_text())
    assert waiting >= 10

    page.keyboard.press("j")
    first = page.locator(".queue-card").first
    expect(first.locator(".queue-card__image")).to_be_focused()
    item_id = first.get_attribute("data-item-id")
    page.keyboard.press("c")
    page.wait_for_url(re.compile(rf"/review/items/{item_id}$"))

    image = page.locator("#item-image img")
    expect(image).to_have_attribute("src", f"/media/items/{item_id}/preview")
    assert site.query("SELECT claimed_by_id FROM items WHERE id = ?", item_id)[0][0] is not None

    page.evaluate("window.stillTheSamePage = true")  # gone if anything reloads the page
    page.keyboard.press("v")
    expect(image).to_have_attribute("src", re.compile(rf"/media/items/{item_id}/original\?token="))
    wait_until_loaded(page.locator("#item-image img"))

    page.locator("#decide-category").select_option("spam")
    page.keyboard.press("Escape")  # leave the field: keys typed in it are not shortcuts
    page.keyboard.press("r")
    expect(page.locator("#review-screen")).not_to_have_attribute("data-item-id", item_id or "")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#count-review")).to_have_text(str(waiting - 1))
    expect(page.locator(f'.up-next a[href^="/review/items/{item_id}"]')).to_have_count(0)
    assert re.search(r"/review/items/[\w-]+$", page.url)  # the next item's address
    assert site.query("SELECT status FROM items WHERE id = ?", item_id) == [("removed",)]
    assert site.query("SELECT outcome, category FROM decisions WHERE item_id = ?", item_id) == [
        ("remove", "spam")
    ]

    admin = log_in(browser, site, "admin")
    admin.goto(f"{site.url}/admin/audit?target_id={item_id}")
    expect(admin.locator("main")).to_contain_text("item.revealed")
    expect(admin.locator("main")).to_contain_text("item.decided")


def test_the_undo_key_brings_the_item_back(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "moderator")
    page.goto(site.url + "/review/")
    page.get_by_role("button", name="Next item").click()
    page.wait_for_url(re.compile(r"/review/items/"))
    decided = screen_item_id(page)
    page.keyboard.press("a")
    expect(page.locator("#review-screen")).not_to_have_attribute("data-item-id", decided)
    page.keyboard.press("u")
    expect(page.locator("#review-screen")).to_have_attribute("data-item-id", decided)
    assert site.query("SELECT status FROM items WHERE id = ?", decided) == [("queued",)]


def test_a_lead_approves_a_similar_image_cluster_at_once(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "lead")
    page.goto(site.url + "/review/")
    page.locator(".queue-card .queue-card__image").first.click()
    page.wait_for_url(re.compile(r"/review/items/"))
    current = screen_item_id(page)
    ticked = page.locator(".similar-item input[type=checkbox]:checked")
    expect(ticked.first).to_be_visible()
    cluster = [current, *(box.get_attribute("value") or "" for box in ticked.all())]
    assert len(cluster) >= 2
    page.get_by_role("button", name="Approve this and the ticked ones").click()
    expect(page.locator("#review-screen")).not_to_have_attribute("data-item-id", current)
    for item_id in cluster:
        assert site.query("SELECT status FROM items WHERE id = ?", item_id) == [("approved",)]
    placeholders = ",".join("?" * len(cluster))
    batches = site.query(
        "SELECT count(DISTINCT batch_id), count(*) FROM decisions "
        f"WHERE item_id IN ({placeholders})",
        *cluster,
    )
    assert batches == [(1, len(cluster))]


def test_bulk_select_with_the_keyboard(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "moderator")
    page.goto(site.url + "/review/")
    for key in ("j", "x", "j", "x"):
        page.keyboard.press(key)
    expect(page.locator("[data-selected-count]")).to_have_text("2")
    chosen = [
        box.get_attribute("value") for box in page.locator(".queue-card__select:checked").all()
    ]
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator(".flash--success, .flash--warning")).to_contain_text("Approved 2 items")
    for item_id in chosen:
        assert site.query("SELECT status FROM items WHERE id = ?", item_id) == [("approved",)]


def test_the_question_mark_lists_the_shortcuts(browser: Browser, site: Site) -> None:
    page = log_in(browser, site, "moderator")
    page.goto(site.url + "/review/")
    page.keyboard.press("?")
    dialog = page.locator("#shortcuts")
    expect(dialog).to_be_visible()
    keys = dialog.locator("dt kbd").all_inner_texts()
    for key in ("j", "k", "x", "c", "n", "?"):
        assert key in keys
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Next item").click()
    page.wait_for_url(re.compile(r"/review/items/"))
    page.keyboard.press("?")
    keys = page.locator("#shortcuts dt kbd").all_inner_texts()
    for key in ("a", "r", "e", "v", "n"):
        assert key in keys
    page.keyboard.press("Escape")
    page.locator("#decide-note").fill("area")  # typing in a field decides nothing
    assert site.query("SELECT status FROM items WHERE id = ?", screen_item_id(page)) == [
        ("queued",)
    ]


def test_screenshots_for_the_moderator_guide(browser: Browser, site: Site, tmp_path: Path) -> None:
    shots = Path(os.environ.get("MODTOOLS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = log_in(browser, site, "moderator")
    page.goto(site.url + "/review/?queue=all")
    page.screenshot(path=shots / "review-queue.png")
    page.goto(site.url + "/review/")
    page.get_by_role("button", name="Next item").click()
    page.wait_for_url(re.compile(r"/review/items/"))
    page.screenshot(path=shots / "review-item.png", full_page=True)
    page.keyboard.press("v")
    wait_until_loaded(page.locator("#item-image img"))
    page.locator("#item-image").screenshot(path=shots / "review-revealed.png")
    page.keyboard.press("?")
    page.locator("#shortcuts").screenshot(path=shots / "review-shortcuts.png")
    page.keyboard.press("Escape")
    page.goto(site.url + "/review/preferences")
    page.screenshot(path=shots / "review-preferences.png")
    page.goto(site.url + "/review/dashboard")
    page.locator("#review-dashboard").screenshot(path=shots / "review-dashboard.png")
    phone = browser.new_context(
        viewport={"width": 360, "height": 760}, storage_state=page.context.storage_state()
    )
    small = phone.new_page()
    small.goto(site.url + "/review/")
    small.screenshot(path=shots / "review-queue-phone.png")
    assert all(
        (shots / name).stat().st_size > 5000
        for name in (
            "review-queue.png",
            "review-item.png",
            "review-revealed.png",
            "review-preferences.png",
        )
    )
