/* Modtools Image: the review pages' behaviour. No build step, no dependencies, no inline script.
 *
 * Keys are app.js's job: it clicks the [data-key] element of a pressed key (never while typing
 * in a field or with Ctrl/Alt/Meta) and lists them all under "?". This file only gives some of
 * those elements something to do:
 *
 * - the grid: [data-grid="next" | "previous"] move the keyboard focus between previews (j/k),
 *   [data-grid="toggle"] ticks the focused preview for a bulk decision (x), and
 *   [data-grid="claim"] claims the focused preview's item and opens it (c);
 * - the count of ticked previews beside the bulk buttons;
 * - the decision form: choosing a category picks the bank configured for it;
 * - the undo bar disappears when its time is up;
 * - Esc in a field of the item screen leaves the field, so the shortcuts work again;
 * - after htmx swaps in the next item, focus goes to its heading so the keys keep working and
 *   screen readers announce the new item.
 */
(function () {
  "use strict";

  /* ------------------------------------------------------------ the grid */

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll(".queue-card .queue-card__image"));
  }

  function focusedCardIndex(links) {
    var active = document.activeElement;
    var card = active && active.closest ? active.closest(".queue-card") : null;
    if (!card) return -1;
    return links.indexOf(card.querySelector(".queue-card__image"));
  }

  function move(step) {
    var links = cards();
    if (!links.length) return;
    var index = focusedCardIndex(links);
    var next = index === -1 ? 0 : Math.min(links.length - 1, Math.max(0, index + step));
    links[next].focus();
    links[next].scrollIntoView({ block: "nearest" });
  }

  function currentCard() {
    var links = cards();
    var index = focusedCardIndex(links);
    return index === -1 ? null : links[index].closest(".queue-card");
  }

  function toggleCurrent() {
    var card = currentCard();
    if (!card) {
      move(0);
      card = currentCard();
    }
    var box = card && card.querySelector(".queue-card__select");
    if (!box) return;
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function claimCurrent() {
    var card = currentCard();
    var form = document.getElementById("claim-form");
    if (!card || !form) return;
    form.action = card.querySelector(".queue-card__image").getAttribute("data-claim-url");
    form.submit();
  }

  var GRID_ACTIONS = {
    next: function () { move(1); },
    previous: function () { move(-1); },
    toggle: toggleCurrent,
    claim: claimCurrent,
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-grid]") : null;
    if (!button) return;
    var action = GRID_ACTIONS[button.getAttribute("data-grid")];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  function countSelected() {
    var count = document.querySelectorAll(".queue-card__select:checked").length;
    document.querySelectorAll("[data-selected-count]").forEach(function (element) {
      element.textContent = String(count);
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.classList && event.target.classList.contains("queue-card__select")) {
      countSelected();
    }
    if (event.target.id === "decide-category") pickBank(event.target);
  });

  /* ------------------------------------------------------------ the decision form */

  function pickBank(select) {
    var map = {};
    try {
      map = JSON.parse(select.getAttribute("data-bank-map") || "{}");
    } catch (ignored) {
      return;
    }
    var bank = document.getElementById("decide-bank");
    var add = document.getElementById("decide-add-to-bank");
    if (!bank || !add) return;
    var bankId = map[select.value];
    if (bankId !== undefined) {
      bank.value = String(bankId);
      add.checked = true;
    }
  }

  /* Shortcuts never fire while typing (app.js), so Esc is the way out of a field: focus goes
     back to the item's heading. */
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    var field = event.target;
    if (!field.closest || !field.closest("#review-screen")) return;
    if (!field.closest("input, select, textarea")) return;
    field.blur();
    var heading = document.getElementById("item-title");
    if (heading) heading.focus({ preventScroll: true });
  });

  /* ------------------------------------------------------------ undo bar */

  function expireUndo(root) {
    var bars = (root || document).querySelectorAll ? (root || document).querySelectorAll("[data-expires-in]") : [];
    Array.prototype.forEach.call(bars, function (bar) {
      var seconds = parseInt(bar.getAttribute("data-expires-in"), 10) || 0;
      window.setTimeout(function () {
        if (bar.parentNode) bar.parentNode.removeChild(bar);
      }, seconds * 1000);
    });
  }

  /* ------------------------------------------------------------ after a swap */

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "review-screen") {
      var heading = document.getElementById("item-title");
      if (heading) heading.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  });

  document.addEventListener("htmx:load", function (event) {
    expireUndo(event.target);
    countSelected();
  });

  function start() {
    expireUndo(document);
    countSelected();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
