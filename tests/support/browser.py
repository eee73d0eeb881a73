"""The web chat in a browser tab (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

ARGS = [  # chromium headless in a container: no sandbox, GPU or background traffic
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WAIT_MS = 90_000


class Page:
    """A browser tab on the chat that records every JavaScript dialog it is shown."""

    def __init__(self, browser, url: str, context=None) -> None:
        self.own_context = context is None
        self.context = context or browser.new_context(viewport={"width": 1200, "height": 1100})
        self.tab = self.context.new_page()
        self.dialogs: list[str] = []
        self.tab.on("dialog", self._dialog)
        self.tab.goto(url)
        self.tab.wait_for_selector("#sk-question textarea", timeout=WAIT_MS)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def ask(self, question: str, timeout_ms: int = WAIT_MS) -> None:
        """Type a question, press Enter, wait for its finished answer."""
        done = self.tab.locator(".sk-footer").count()
        self.tab.fill("#sk-question textarea", question)
        self.tab.press("#sk-question textarea", "Enter")
        self.wait_for_answers(done + 1, timeout_ms)

    def wait_for_answers(self, count: int, timeout_ms: int = WAIT_MS) -> None:
        self.tab.wait_for_function(
            f"document.querySelectorAll('.sk-footer').length >= {count}", timeout=timeout_ms
        )

    def answers(self):
        return self.tab.locator(".sk-answer")

    def close(self) -> None:
        if self.own_context:
            self.context.close()
        else:
            self.tab.close()
