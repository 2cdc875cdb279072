/* Modtools Image: the little JavaScript the pages need. No build step, no dependencies.
 *
 * - Toasts: shows htmx errors (htmx 2 does not swap error responses, so without this a failed
 *   request would look like nothing happened) and fades out toasts the server sends out of band.
 * - Keyboard shortcuts: any element with data-key="x" is clicked when x is pressed; "?" lists
 *   them in <dialog id="shortcuts">. See docs/ui.md.
 *
 * Everything here reads the DOM; nothing is configured by inline script (the CSP forbids it).
 */
(function () {
  "use strict";

  var TOAST_SECONDS = 8;
  var MAX_TOASTS = 5;
  var MAX_MESSAGE = 200;

  /* ------------------------------------------------------------ toasts */

  function toastRegion() {
    return document.getElementById("toasts");
  }

  /** Add a toast. kind: "error", "warning", "success" or "info". Text only, never HTML. */
  function showToast(message, kind) {
    var region = toastRegion();
    if (!region) return;
    kind = kind || "info";
    var toast = document.createElement("div");
    toast.className = "toast toast--" + kind;
    if (kind === "error") toast.setAttribute("role", "alert");
    var text = document.createElement("p");
    text.className = "toast__message";
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close";
    close.setAttribute("data-dismiss", "toast");
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    toast.appendChild(text);
    toast.appendChild(close);
    region.appendChild(toast);
  }

  function dismiss(toast) {
    if (toast && toast.parentNode) toast.parentNode.removeChild(toast);
  }

  /* Errors stay until dismissed: a moderator must not miss that a decision failed. Others fade,
     but never while the pointer or keyboard focus is on them. */
  function scheduleDismiss(toast) {
    if (toast.classList.contains("toast--error")) return;
    window.setTimeout(function retry() {
      if (toast.matches(":hover, :focus-within")) {
        window.setTimeout(retry, 2000);
      } else {
        dismiss(toast);
      }
    }, TOAST_SECONDS * 1000);
  }

  function watchToasts() {
    var region = toastRegion();
    if (!region) return;
    new MutationObserver(function (mutations) {
      mutations.forEach(function (mutation) {
        mutation.addedNodes.forEach(function (node) {
          if (node.nodeType === 1 && node.classList.contains("toast")) scheduleDismiss(node);
        });
      });
      var toasts = region.querySelectorAll(".toast");
      for (var i = 0; i < toasts.length - MAX_TOASTS; i++) dismiss(toasts[i]);
    }).observe(region, { childList: true });
    region.querySelectorAll(".toast").forEach(scheduleDismiss);
  }

  /* The short human message in an error response: the JSON error's message, or the title and
     message of the site's error page (parsed inertly: DOMParser runs no scripts). */
  function errorText(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    var body = xhr.responseText || "";
    try {
      if (type.indexOf("json") !== -1) {
        var error = JSON.parse(body).error || {};
        return error.message || "";
      }
      if (type.indexOf("html") !== -1) {
        var page = new DOMParser().parseFromString(body, "text/html");
        var title = page.querySelector("[data-error-title]");
        var message = page.querySelector("[data-error-message]");
        return [title && title.textContent.trim(), message && message.textContent.trim()]
          .filter(Boolean)
          .join(": ");
      }
    } catch (ignored) {
      /* An unreadable body still gets the status line below. */
    }
    return "";
  }

  function shorten(text) {
    text = text.replace(/\s+/g, " ").trim();
    return text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE - 1) + "\u2026" : text;
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var detail = errorText(xhr) || xhr.statusText || "The server refused the request.";
    showToast(shorten(xhr.status + " " + detail), "error");
  });

  document.addEventListener("htmx:sendError", function () {
    showToast("Could not reach the server. Check your connection and try again.", "error");
  });

  /* ------------------------------------------------------------ clean filter URLs */

  // An empty filter field means "any"; leaving it out keeps the pushed URL short and shareable
  // (?actor=bob, not ?actor=bob&action=&target_type=…). Only for GET: a POST sends what it has.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.verb !== "get") return;
    var parameters = event.detail.parameters;
    Array.from(new Set(parameters.keys())).forEach(function (name) {
      var values = parameters.getAll(name);
      if (values.every(function (value) { return value === ""; })) parameters.delete(name);
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss='toast']");
    if (button) dismiss(button.closest(".toast"));
  });

  /* ------------------------------------------------------------ keyboard shortcuts */

  function isTyping(target) {
    if (!target || target.nodeType !== 1) return false;
    return Boolean(
      target.isContentEditable || target.closest("input, textarea, select, [contenteditable]")
    );
  }

  function isUsable(element) {
    if (element.disabled || element.getAttribute("aria-disabled") === "true") return false;
    if (element.closest("[hidden], [inert]")) return false;
    var dialog = element.closest("dialog");
    if (dialog && !dialog.open) return false;
    return element.getClientRects().length > 0; // laid out, so not display:none
  }

  /* Every usable [data-key] element, first one per key, in document order. */
  function shortcuts() {
    var seen = {};
    var found = [];
    document.querySelectorAll("[data-key]").forEach(function (element) {
      var key = element.getAttribute("data-key");
      if (!key || seen[key] || !isUsable(element)) return;
      seen[key] = true;
      found.push({ key: key, element: element });
    });
    return found;
  }

  function describe(element) {
    return (
      element.getAttribute("title") ||
      element.getAttribute("aria-label") ||
      element.textContent.replace(/\s+/g, " ").trim()
    );
  }

  /* Screen readers announce aria-keyshortcuts; keep it in step with data-key. */
  function labelShortcuts(root) {
    var elements = root.querySelectorAll ? root.querySelectorAll("[data-key]") : [];
    Array.prototype.forEach.call(elements, function (element) {
      if (!element.hasAttribute("aria-keyshortcuts")) {
        element.setAttribute("aria-keyshortcuts", element.getAttribute("data-key"));
      }
    });
  }

  function addRow(list, key, text) {
    var term = document.createElement("dt");
    var kbd = document.createElement("kbd");
    kbd.textContent = key;
    term.appendChild(kbd);
    var definition = document.createElement("dd");
    definition.textContent = text;
    list.appendChild(term);
    list.appendChild(definition);
  }

  function openShortcuts() {
    var dialog = document.getElementById("shortcuts");
    var list = document.getElementById("shortcuts-list");
    if (!dialog || !list || dialog.open) return;
    list.replaceChildren();
    var found = shortcuts();
    found.forEach(function (shortcut) {
      addRow(list, shortcut.key, describe(shortcut.element));
    });
    addRow(list, "?", "Show this list");
    addRow(list, "Esc", "Close this list");
    if (!found.length) {
      var none = document.createElement("p");
      none.className = "muted";
      none.textContent = "This page has no shortcuts of its own.";
      list.parentNode.insertBefore(none, list);
      dialog.addEventListener("close", function () { dismiss(none); }, { once: true });
    }
    dialog.showModal();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) return;
    // Holding a key down must not decide thirty items.
    if (event.repeat || isTyping(event.target)) return;
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys
    if (event.key === "?") {
      event.preventDefault();
      openShortcuts();
      return;
    }
    var match = shortcuts().filter(function (shortcut) {
      return shortcut.key === event.key;
    })[0];
    if (match) {
      event.preventDefault();
      match.element.click();
    }
  });

  /* ------------------------------------------------------------ user menu */

  // A <details> menu works without JavaScript; this only closes it the way menus usually close.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  /* ------------------------------------------------------------ start */

  function start() {
    watchToasts();
    labelShortcuts(document);
    document.querySelectorAll("[data-shortcuts-open]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", openShortcuts);
    });
  }

  // htmx fires htmx:load for every piece of content it swaps in.
  document.addEventListener("htmx:load", function (event) {
    labelShortcuts(event.target);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  window.modtools = { showToast: showToast, openShortcuts: openShortcuts };
})();
