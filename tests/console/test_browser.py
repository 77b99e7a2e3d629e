"""Each role logs in with a real browser and does its main task; a role is refused a page."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.browser import browser_page, browser_pages, log_in, needs_chromium, shot
from tests.console.conftest import Demo

pytestmark = needs_chromium


def test_store_associate_verifies_a_pickup_code_and_hands_over(demo: Demo) -> None:
    with browser_page() as page:
        log_in(page, demo, "store@demo.omnicx")
        expect(page.get_by_role("heading", name="Store oslo-1")).to_be_visible()
        shot(page, demo, "store")
        page.get_by_role("textbox", name="Pickup code").fill("WRONG1")
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_role("alert")).to_contain_text("No pickup in this store")

        page.get_by_role("textbox", name="Pickup code").fill(demo.pickup_code.lower())
        page.get_by_role("button", name="Verify").click()
        expect(page.get_by_role("status")).to_contain_text("ANA-1001")
        page.get_by_role("link", name="Open the order").click()
        expect(page.get_by_text("Code verified")).to_be_visible()
        # The customer's side: her online wishlist and her purchases.
        sidebar = page.locator("aside, .cols > div").last
        expect(sidebar).to_contain_text("Alpine Shell Jacket")
        expect(page.get_by_label("Customer's code")).to_have_value(demo.pickup_code.lower())
        shot(page, demo, "store-order")
        page.get_by_role("button", name="Collected").click()
        expect(page.get_by_role("status")).to_contain_text("collected")
        expect(page.locator("h1 .pill")).to_have_text("collected")
        # Her recent chat is beside the order; a note joins that thread.
        expect(page.locator(".thread")).to_contain_text("Is the Alpine Shell Jacket waterproof?")
        page.get_by_label("Add a note to the customer's thread").fill("Tried on M: fits.")
        page.get_by_role("button", name="Add note").click()
        expect(page.get_by_role("status")).to_contain_text("Note added")
        expect(page.locator(".thread")).to_contain_text("Tried on M: fits.")

        # Another store's page and the analytics dashboard are refused.
        response = page.goto(f"{demo.url}/console/store?store=bergen-1")
        assert response is not None and response.status == 403
        response = page.goto(f"{demo.url}/console/dashboard")
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        shot(page, demo, "refused")
        expect(page.get_by_role("link", name="Dashboard")).to_have_count(0)


def test_marketer_builds_a_segment_and_publishes_a_journey(demo: Demo) -> None:
    with browser_page() as page:
        log_in(page, demo, "marketer@demo.omnicx")
        expect(page).to_have_url(re.compile(r"/console/segments$"))
        shot(page, demo, "segments")
        page.get_by_role("link", name="New segment").click()
        page.get_by_label("Name").fill("Oslo customers")
        editor = page.get_by_label("Definition (YAML or JSON)")
        editor.fill("trait: city\nop: equals\nvalue: Oslo\n")
        count = page.locator("#live-count")
        expect(count).to_contain_text(re.compile(r"\d+ customers? match now"))
        editor.fill("trait: city\nop: nonsense\n")
        expect(count).to_have_class(re.compile("bad"))
        editor.fill("trait: city\nop: equals\nvalue: Oslo\n")
        expect(count).to_contain_text("match now")
        shot(page, demo, "segment-editor")
        page.get_by_role("button", name="Save segment").click()
        expect(page.get_by_role("heading", name="Oslo customers")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("Saved")

        page.get_by_role("link", name="Journeys").click()
        page.get_by_role("link", name="Abandoned cart").click()
        expect(page.locator("svg.graph g.node")).to_have_count(3)
        expect(page.locator("#validity")).to_contain_text("Valid")
        page.get_by_role("button", name="Publish draft").click()
        expect(page.get_by_role("status")).to_contain_text("Published version 2")
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("h1 .pill")).to_have_text("paused")
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("h1 .pill")).to_have_text("live")
        shot(page, demo, "journey")

        page.get_by_role("link", name="Messages").click()
        expect(page.get_by_role("heading", name="Brand kit")).to_be_visible()
        shot(page, demo, "messages")


def test_analyst_sees_charts_with_data(demo: Demo) -> None:
    with browser_page() as page:
        log_in(page, demo, "analyst@demo.omnicx")
        expect(page).to_have_url(re.compile(r"/console/dashboard$"))
        clv = page.get_by_role("img", name="Customers by historical CLV")
        expect(clv.locator("rect")).not_to_have_count(0)
        heat = page.get_by_role("img", name=re.compile("^Retention by first-order month"))
        expect(heat.locator("rect")).not_to_have_count(0)
        satisfaction = page.get_by_role("img", name="CSAT (% satisfied) and NPS by month")
        expect(satisfaction.locator("circle")).not_to_have_count(0)
        expect(page.get_by_role("img", name=re.compile("^Funnel of"))).not_to_have_count(0)
        shot(page, demo, "dashboard")
        page.get_by_role("link", name="Experiments").click()
        page.get_by_label("Experiment").fill("checkout-button")
        page.get_by_role("button", name="Show").click()
        expect(page.get_by_role("cell", name="control", exact=True)).to_be_visible()
        expect(page.get_by_role("cell", name="green-button", exact=True)).to_be_visible()
        shot(page, demo, "experiments")
        # Read only: no segment editor.
        page.goto(f"{demo.url}/console/segments")
        expect(page.get_by_role("link", name="New segment")).to_have_count(0)
        response = page.goto(f"{demo.url}/console/segments/new")
        assert response is not None and response.status == 403


def test_agent_answers_a_handed_off_chat_live(demo: Demo) -> None:
    with browser_pages(2) as (page, admin):
        log_in(page, demo, "agent@demo.omnicx")
        expect(page).to_have_url(re.compile(r"/console/inbox$"))
        expect(page.get_by_role("link", name="All open")).to_have_attribute("aria-current", "true")
        shot(page, demo, "inbox")
        page.get_by_role("link", name=re.compile("^#")).first.wait_for()
        row = page.locator("tr", has_text="Ana").first
        row.get_by_role("link").first.click()
        expect(page.locator("h1")).to_contain_text("Ana Berg")
        # Handed off by the bot to the free agent of the queue.
        expect(page.locator("#th")).to_contain_text("Aksel Agent")
        # The bot's transcript and what she bought are on the page.
        handoff = page.locator(
            "section", has=page.get_by_role("heading", name="Handoff from the bot")
        )
        expect(handoff).to_contain_text("Is the Alpine Shell Jacket waterproof?")
        expect(page.get_by_text("Recent purchases")).to_be_visible()
        expect(page.locator("main")).to_contain_text("ANA-1001")
        page.get_by_label("Reply").fill("Yes, it is fully waterproof, and Oslo has it in M.")
        page.get_by_role("button", name="Send").click()
        thread = page.locator("#thread")
        expect(thread).to_contain_text("fully waterproof")
        shot(page, demo, "conversation")

        # Another staff member's note shows up on the open page without a reload.
        log_in(admin, demo, "admin@demo.omnicx")
        admin.goto(page.url)
        admin.get_by_role("button", name="Assign to me").click()
        expect(admin.get_by_role("status")).to_contain_text("Assigned to Alex Admin")
        admin.get_by_label("Reply").fill("Checked: two in M at Oslo.")
        admin.get_by_label("Internal note (staff only)").check()
        admin.get_by_role("button", name="Send").click()
        expect(admin.get_by_role("status")).to_contain_text("Note added")
        expect(thread).to_contain_text("Checked: two in M at Oslo.", timeout=8_000)

        # The customer 360 from the search.
        page.get_by_role("link", name="Customers").click()
        page.get_by_label("Email, phone, id or trait").fill("ana.berg@example.com")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name="Ana Berg").click()
        orders = page.locator("section", has=page.get_by_role("heading", name="Orders and pickups"))
        expect(orders).to_contain_text("Alpine Shell Jacket")
        timeline = page.locator("ul.timeline")
        expect(timeline).to_contain_text("Product Viewed")
        conversations = page.locator(
            "section", has=page.get_by_role("heading", name="Conversations")
        )
        expect(conversations).to_contain_text("fully waterproof")
        shot(page, demo, "customer")
        page.get_by_role("link", name=re.compile("ios$")).first.click()
        expect(timeline).to_contain_text("Order Completed")
        expect(timeline).not_to_contain_text("Product Added to Wishlist")


def test_login_session_and_csrf(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url, follow_redirects=False) as client:
        assert client.get("/console/customers").headers["location"].startswith("/console/login")
        bad = client.post(
            "/console/login", data={"email": "admin@demo.omnicx", "password": "wrong password"}
        )
        assert bad.status_code == 401 and "Wrong email or password" in bad.text
        ok = client.post(
            "/console/login",
            data={
                "email": "Admin@Demo.omnicx",
                "password": "demo-password",
                "next": "https://evil.example/",
            },
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/console/customers"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert client.get("/console/customers").status_code == 200
        # A form posted without its token is refused and changes nothing.
        refused = client.post("/console/journeys/abandoned-cart/stop", data={})
        assert refused.status_code == 403
        assert "did not come from the console" in refused.text
        page = client.get("/console/journeys/abandoned-cart")
        assert 'class="pill pill-live"' in page.text
