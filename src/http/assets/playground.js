// buurtrelay playground: post as a member or coordinator in a sandbox group,
// see what the relay would do while typing (POST /api/simulate), and watch
// its reminders and copies arrive live (server-sent events, GET /sandbox/events).
//
// Safety: every text from the server is put in the page with textContent,
// never as HTML. The page's Content-Security-Policy allows this file only.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let data = null; // GET /api/playground
  const L = (k) => (data && data.labels[k]) || k;
  const chats = new Map(); // group id -> Map(message id -> message)
  let replyTo = null; // { group, id, text, name }
  let previewSeq = 0;
  let previewTimer = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function groupName(id) {
    const g = data.groups.find((g) => g.id === id);
    return g ? g.name : id;
  }

  // Message ids are decimal u64 strings: compare by length, then text.
  function byId(a, b) {
    return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  function timeOf(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
  }

  // ---- columns -----------------------------------------------------------

  function column(group) {
    return document.querySelector('.phone[data-group="' + CSS.escape(group) + '"] .chat');
  }

  function render(group, fresh) {
    const list = column(group);
    if (!list) return;
    const msgs = Array.from((chats.get(group) || new Map()).values()).sort(byId);
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.replaceChildren();
    if (msgs.length === 0) {
      list.append(el("li", "empty", L("no_messages")));
    }
    const byMsgId = chats.get(group) || new Map();
    for (const m of msgs) {
      const li = el("li", "msg " + (m.from_relay ? "from-relay" : "from-member"));
      li.dataset.id = m.id;
      if (fresh && fresh.has(m.id)) li.classList.add("fresh");
      const head = el("div", "meta");
      const name = el("span", "who", m.sender_name || m.sender);
      head.append(name);
      if (m.from_relay) head.append(el("span", "badge relay", L("relay")));
      head.append(el("time", "at", timeOf(m.at_ms)));
      li.append(head);
      if (m.reply_to) {
        const orig = byMsgId.get(m.reply_to);
        const q = el("blockquote", "quote");
        if (orig) {
          q.append(el("span", "quote-who", orig.sender_name || orig.sender));
          q.append(el("span", "quote-text", orig.text));
        } else {
          q.append(el("span", "quote-text", L("original_missing")));
        }
        li.append(q);
      }
      li.append(el("p", "text", m.text));
      const btn = el("button", "reply", L("reply"));
      btn.type = "button";
      btn.setAttribute(
        "aria-label",
        L("reply_to_label") + " " + (m.sender_name || m.sender) + ": " + m.text.slice(0, 60)
      );
      btn.addEventListener("click", () => startReply(group, m));
      li.append(btn);
      list.append(li);
    }
    if (nearBottom || fresh) list.scrollTop = list.scrollHeight;
  }

  function add(group, m) {
    if (!chats.has(group)) chats.set(group, new Map());
    const known = chats.get(group).has(m.id);
    chats.get(group).set(m.id, m);
    if (!known) {
      render(group, new Set([m.id]));
      announce(group);
    } else {
      // An edited copy: shown with its new text.
      render(group);
    }
  }

  // One short spoken summary per burst ("New message in Heers, Heks, ..."),
  // rather than eleven live regions talking at once.
  let arrived = [];
  let announceTimer = null;
  function announce(group) {
    if (!arrived.includes(group)) arrived.push(group);
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      $("announce").textContent = L("new_in") + " " + arrived.map(groupName).join(", ");
      arrived = [];
    }, 600);
  }

  async function loadAll() {
    await Promise.all(
      data.groups.map(async (g) => {
        const r = await fetch("/sandbox/" + encodeURIComponent(g.id) + "/messages?limit=200");
        if (!r.ok) return;
        const body = await r.json();
        const map = chats.get(g.id) || new Map();
        for (const m of body.messages) map.set(m.id, m);
        chats.set(g.id, map);
        render(g.id);
      })
    );
  }

  // ---- live events -------------------------------------------------------

  function connect() {
    const live = $("live");
    const es = new EventSource("/sandbox/events");
    es.addEventListener("ready", () => {
      live.textContent = "● " + L("live");
      live.className = "live on";
      // (Re)connected: read the chats, so nothing posted meanwhile is missed.
      loadAll();
    });
    es.addEventListener("message", (ev) => {
      const e = JSON.parse(ev.data);
      if (e.deleted) {
        // A retracted copy: gone from its chat.
        if (chats.has(e.group) && chats.get(e.group).delete(e.message.id)) render(e.group);
      } else {
        add(e.group, e.message);
      }
    });
    es.addEventListener("resync", () => loadAll());
    es.addEventListener("error", () => {
      live.textContent = "○ " + L("offline");
      live.className = "live off";
    });
  }

  // ---- composing ---------------------------------------------------------

  function fillSenders() {
    const g = data.groups.find((g) => g.id === $("village").value) || data.groups[0];
    const sel = $("sender");
    const before = sel.value;
    sel.replaceChildren();
    const opt = (id, name, role) => {
      const o = el("option", null, name + " · " + L(role));
      o.value = id;
      o.dataset.name = name;
      o.dataset.role = role;
      sel.append(o);
    };
    for (const m of g.members) opt(m.id, m.name, "member");
    for (const c of g.coordinators) opt(c, c, "coordinator");
    for (const p of g.police) opt(p, p, "police");
    if (Array.from(sel.options).some((o) => o.value === before)) sel.value = before;
    showCommands();
  }

  function selectedSender() {
    const o = $("sender").selectedOptions[0];
    return o ? { id: o.value, name: o.dataset.name, role: o.dataset.role } : null;
  }

  // Coordinator commands: the relay lists them in /api/playground
  // (`commands`). /intrekken and /doorsturen go as a reply: pick Reply on
  // the message first.
  function showCommands() {
    const s = selectedSender();
    const box = $("commands");
    box.hidden = !(s && s.role === "coordinator");
    const body = $("commands-body");
    body.replaceChildren();
    if (!data.commands.length) {
      body.append(el("p", "muted", L("no_commands")));
      return;
    }
    for (const c of data.commands) {
      const b = el("button", "command", c.usage);
      b.type = "button";
      b.title = c.description;
      b.addEventListener("click", () => {
        $("text").value = c.usage;
        $("text").focus();
        schedulePreview();
      });
      body.append(b);
    }
  }

  // Bring the chosen village's column into view: the row of columns
  // scrolls sideways; the page itself does not move (on a phone the
  // composer stays where the user is typing).
  function showColumn(group) {
    const col = document.querySelector('.phone[data-group="' + CSS.escape(group) + '"]');
    const row = document.querySelector(".phones");
    if (!col || !row) return;
    const left = col.offsetLeft; // .phones is the offset parent
    if (left < row.scrollLeft || left + col.offsetWidth > row.scrollLeft + row.clientWidth) {
      row.scrollTo({ left: Math.max(0, left - 8), behavior: "smooth" });
    }
  }

  function startReply(group, m) {
    $("village").value = group;
    fillSenders();
    replyTo = { group: group, id: m.id };
    $("replying-quote").textContent = (m.sender_name || m.sender) + ": " + m.text;
    $("replying").hidden = false;
    $("text").focus();
  }

  function cancelReply() {
    replyTo = null;
    $("replying").hidden = true;
  }

  async function send(ev) {
    if (ev) ev.preventDefault();
    const text = $("text").value;
    const s = selectedSender();
    if (!text.trim() || !s) return;
    const group = $("village").value;
    const body = { sender: s.id, sender_name: s.name, text: text };
    if (replyTo && replyTo.group === group) body.reply_to = replyTo.id;
    $("send").disabled = true;
    try {
      const r = await fetch("/sandbox/" + encodeURIComponent(group) + "/messages", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) {
        $("status").textContent = L("not_sent") + " " + (answer.error || r.status);
        return;
      }
      add(group, answer.message);
      showColumn(group);
      $("status").textContent = L("sent");
      $("text").value = "";
      cancelReply();
      showPreview(null);
    } catch (e) {
      $("status").textContent = L("not_sent") + " " + e;
    } finally {
      $("send").disabled = false;
      $("text").focus();
    }
  }

  // ---- what the relay would do ------------------------------------------

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 250);
  }

  async function preview() {
    const text = $("text").value;
    const s = selectedSender();
    const seq = ++previewSeq;
    if (!text.trim() || !s) {
      showPreview(null);
      return;
    }
    try {
      const r = await fetch("/api/simulate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ group: $("village").value, sender: s.id, sender_name: s.name, text: text }),
      });
      if (seq !== previewSeq) return; // a newer keystroke won
      if (!r.ok) return;
      showPreview(await r.json());
    } catch (e) {
      /* the next keystroke tries again */
    }
  }

  function showPreview(d) {
    const box = $("preview");
    box.replaceChildren();
    if (!d) {
      box.append(el("p", "muted", L("preview_empty")));
      return;
    }
    const badges = el("p", "badges");
    badges.append(el("span", "badge " + (d.alert ? "alert" : "calm"), d.alert ? L("alert") : L("not_alert")));
    if (d.alert) {
      badges.append(
        el("span", "badge " + (d.confirmed ? "called" : "uncalled"), d.confirmed ? L("police_called") : L("police_not_called"))
      );
    }
    if (d.advisory) badges.append(el("span", "badge calm", L("advisory")));
    badges.append(el("span", "badge role", L("role") + ": " + L(d.role)));
    box.append(badges);
    if (d.categories.length) {
      const p = el("p", "cats");
      p.append(el("strong", null, L("categories") + ": "));
      p.append(document.createTextNode(d.categories.map((c) => data.categories[c] || c).join(", ")));
      box.append(p);
    }
    const ul = el("ul", "acts");
    ul.setAttribute("aria-label", L("actions"));
    const forwards = d.actions.filter((a) => a.kind === "forward");
    for (const a of d.actions) {
      if (a.kind === "forward") continue;
      const li = el("li", "act " + a.kind);
      if (a.kind === "remind") {
        li.append(el("strong", null, L("act_remind") + " " + groupName(a.group) + ": "));
        li.append(el("q", null, a.text));
      } else if (a.kind === "hold") {
        li.append(el("strong", null, L("act_hold") + " "));
        li.append(document.createTextNode(a.targets.map(groupName).join(", ")));
      } else if (a.kind === "none") {
        li.append(el("strong", null, L("act_none") + " " + groupName(a.group) + ": "));
        li.append(document.createTextNode(a.reason));
      } else {
        // A coordinator command's answer (and, in a thread, follow-ups).
        li.append(el("strong", null, groupName(a.group) + ": "));
        li.append(el("q", null, a.text || a.kind));
      }
      ul.append(li);
    }
    if (forwards.length) {
      const li = el("li", "act forward");
      li.append(el("strong", null, L("act_forward") + " " + forwards.length + " " + L("villages") + ": "));
      li.append(document.createTextNode(forwards.map((a) => groupName(a.group)).join(", ")));
      li.append(el("q", "copy", forwards[0].text));
      ul.append(li);
    }
    box.append(ul);
  }

  // ---- start -------------------------------------------------------------

  async function start() {
    const r = await fetch("/api/playground");
    data = await r.json();
    for (const g of data.groups) chats.set(g.id, new Map());
    fillSenders();
    $("village").addEventListener("change", () => {
      fillSenders();
      showColumn($("village").value);
      if (replyTo && replyTo.group !== $("village").value) cancelReply();
      schedulePreview();
    });
    $("sender").addEventListener("change", () => {
      showCommands();
      schedulePreview();
    });
    $("text").addEventListener("input", schedulePreview);
    $("text").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) send(ev);
      if (ev.key === "Escape" && replyTo) cancelReply();
    });
    $("compose").addEventListener("submit", send);
    $("cancel-reply").addEventListener("click", () => {
      cancelReply();
      $("text").focus();
    });
    connect();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
