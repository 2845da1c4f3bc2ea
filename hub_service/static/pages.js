// jhub-gateway pages: plain DOM, text only (never innerHTML), every action through the JSON API.
"use strict";
(function () {
  const body = document.body;
  const prefix = body.dataset.prefix || "";
  const xsrf = body.dataset.xsrf || "";
  const hub = body.dataset.hub || "";

  // -- helpers -------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function cores(n) { return Number.isInteger(n) ? String(n) : n.toFixed(2); }

  function age(startMs, stopMs) {
    let s = Math.max(0, Math.round(((stopMs || Date.now()) - startMs) / 1000));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60); s %= 60;
    if (m < 60) return m + " min " + s + " s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d";
  }

  class ApiError extends Error {
    constructor(status, error, message) { super(message); this.status = status; this.error = error; }
  }

  async function api(method, path, payload) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { "X-XSRFToken": xsrf, "X-Gateway-Extensions": "1", Accept: "application/json" },
    };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(prefix + path, init);
    } catch (exc) {
      throw new ApiError(0, "network", "the gateway cannot be reached: " + exc.message);
    }
    if (response.status === 204) return null;
    let data = null;
    try { data = await response.json(); } catch (exc) { data = null; }
    if (!response.ok) {
      const message = data && data.message ? data.message : "HTTP " + response.status;
      throw new ApiError(response.status, data && data.error, message);
    }
    return data;
  }

  function explain(exc, cluster) {
    if (exc.status === 404 && cluster) return "Cluster " + cluster + " no longer exists.";
    if (exc.status === 401) return "Your login expired: reload the page to log in again.";
    return exc.message;
  }

  function notice(text, isError) {
    const node = document.getElementById("notice");
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle("bad", Boolean(isError));
  }

  function initialData() {
    return JSON.parse(document.getElementById("initial-data").textContent);
  }

  function follow(url, onSnapshot) {
    const live = document.getElementById("live");
    const source = new EventSource(prefix + url, { withCredentials: true });
    source.addEventListener("open", () => { live.textContent = "live"; live.dataset.state = "live"; });
    source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.dataset.state = "down"; });
    source.addEventListener("snapshot", (event) => {
      live.textContent = "live";
      live.dataset.state = "live";
      onSnapshot(JSON.parse(event.data));
      body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
    });
    return source;
  }

  function stateCell(c) {
    const cell = el("span", { class: "state state-" + c.status.toLowerCase(), text: c.status });
    const why = c.message ? c.reason + ": " + c.message : c.reason;
    return el("span", { class: "state-wrap" }, cell, el("span", { class: "reason", text: why }));
  }

  function stopButton(c, label) {
    const button = el("button", { type: "button", class: "danger", "aria-label": label + " " + c.name, text: label });
    button.disabled = !(c.status === "PENDING" || c.status === "RUNNING");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("DELETE", "/api/v1/clusters/" + encodeURIComponent(c.name));
        notice("Stopping " + c.name + "…");
      } catch (exc) {
        notice(explain(exc, c.name), true);
        button.disabled = false;
      }
    });
    return button;
  }

  // -- My clusters -------------------------------------------------------------------------
  function fieldFor(option) {
    const id = "opt-" + option.field;
    const spec = option.spec || {};
    const label = el("label", { for: id, text: option.label || option.field });
    let input;
    if (spec.type === "select") {
      input = el("select", { id, name: option.field });
      for (const choice of spec.options || []) {
        input.append(el("option", { value: choice, text: choice, selected: choice === option.default }));
      }
    } else if (spec.type === "bool") {
      input = el("input", { id, name: option.field, type: "checkbox", checked: Boolean(option.default) });
    } else if (spec.type === "int" || spec.type === "float") {
      input = el("input", { id, name: option.field, type: "number", inputmode: "decimal",
        step: spec.type === "int" ? "1" : "any", value: option.default });
    } else if (spec.type === "mapping") {
      input = el("textarea", { id, name: option.field, rows: 2 });
      input.value = JSON.stringify(option.default || {});
    } else {
      input = el("input", { id, name: option.field, type: "text", value: option.default });
    }
    input.dataset.kind = spec.type || "string";
    const hint = [];
    if (spec.min !== undefined && spec.min !== null) hint.push("min " + spec.min);
    if (spec.max !== undefined && spec.max !== null) hint.push("max " + spec.max);
    const error = el("span", { class: "field-error", id: id + "-error", role: "alert" });
    input.setAttribute("aria-describedby", id + "-error");
    return el("div", { class: "field", dataset: { field: option.field } }, label, input,
      hint.length ? el("span", { class: "hint", text: hint.join(", ") }) : null, error);
  }

  function readValue(input) {
    const kind = input.dataset.kind;
    if (kind === "bool") return input.checked;
    if (kind === "int" || kind === "float") {
      const text = input.value.trim();
      const number = Number(text);
      return text === "" || Number.isNaN(number) ? text : number;
    }
    if (kind === "mapping") {
      try { return JSON.parse(input.value || "{}"); } catch (exc) { return input.value; }
    }
    return input.value;
  }

  function showFormError(message) {
    for (const node of document.querySelectorAll("#new-cluster .field-error")) { node.textContent = ""; }
    const general = document.getElementById("form-error");
    general.hidden = true;
    if (!message) return;
    const match = /option '([^']+)'/.exec(message);
    const slot = match && document.getElementById("opt-" + match[1] + "-error");
    if (slot) { slot.textContent = message; } else { general.textContent = message; general.hidden = false; }
  }

  function setupForm(options) {
    const box = document.getElementById("option-fields");
    box.replaceChildren(...options.map(fieldFor));
    if (!options.length) box.append(el("p", { class: "hint", text: "This gateway takes no options." }));
    const form = document.getElementById("new-cluster");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const input of form.querySelectorAll("[name]")) { values[input.name] = readValue(input); }
      const button = document.getElementById("create");
      button.disabled = true;
      showFormError("");
      try {
        const made = await api("POST", "/api/v1/clusters/", { cluster_options: values });
        notice("Created " + made.name + ".");
      } catch (exc) {
        showFormError(explain(exc));
      } finally {
        button.disabled = false;
      }
    });
  }

  function snippet(name) {
    return "from dask_gateway import Gateway\n" +
      "client = Gateway().connect(" + JSON.stringify(name || "<cluster name>") + ").get_client()";
  }

  function clusterControls(c) {
    const running = c.status === "RUNNING";
    const scaleId = "scale-" + c.name;
    const scale = el("input", { id: scaleId, type: "number", min: 0, step: 1, value: c.workers.requested, class: "narrow" });
    const scaleButton = el("button", { type: "button", text: "Scale" });
    const minId = "amin-" + c.name, maxId = "amax-" + c.name;
    const amin = el("input", { id: minId, type: "number", min: 0, step: 1, placeholder: "0", class: "narrow" });
    const amax = el("input", { id: maxId, type: "number", min: 0, step: 1, placeholder: "no limit", class: "narrow" });
    const adaptButton = el("button", { type: "button", text: "Adapt" });
    for (const node of [scale, scaleButton, amin, amax, adaptButton]) node.disabled = !running;
    async function act(path, payload) {
      try {
        const result = await api("POST", "/api/v1/clusters/" + encodeURIComponent(c.name) + path, payload);
        notice(result && result.msg ? result.msg : c.name + ": " + path.slice(1) + " requested.", Boolean(result && result.msg));
      } catch (exc) {
        notice(explain(exc, c.name), true);
      }
    }
    scaleButton.addEventListener("click", () => act("/scale", { count: Number(scale.value) }));
    adaptButton.addEventListener("click", () => act("/adapt", {
      minimum: amin.value === "" ? null : Number(amin.value),
      maximum: amax.value === "" ? null : Number(amax.value),
      active: true,
    }));
    const snip = el("button", { type: "button", text: "Snippet", "aria-label": "Show the notebook snippet for " + c.name });
    snip.addEventListener("click", () => {
      const code = document.getElementById("snippet");
      code.dataset.cluster = c.name;
      code.textContent = snippet(c.name);
      code.closest("section").scrollIntoView({ block: "nearest" });
    });
    return el("div", { class: "controls" },
      el("span", { class: "group" }, el("label", { for: scaleId, text: "Workers" }), scale, scaleButton),
      el("span", { class: "group" }, el("label", { for: minId, text: "Adapt min" }), amin,
        el("label", { for: maxId, text: "max" }), amax, adaptButton),
      el("span", { class: "group" }, snip, stopButton(c, "Stop")));
  }

  function clusterFacts(c) {
    return el("dl", { class: "facts" },
      el("dt", { text: "Workers" }), el("dd", { class: "workers", text: c.workers.active + " / " + c.workers.requested }),
      el("dt", { text: "Cores" }), el("dd", { class: "cores", text: cores(c.cores) }),
      el("dt", { text: "Memory" }), el("dd", { class: "memory", text: bytes(c.memory) }),
      el("dt", { text: "Age" }), el("dd", { class: "age", dataset: { start: c.start_time, stop: c.stop_time || "" }, text: age(c.start_time, c.stop_time) }),
      el("dt", { text: "Dashboard" }), el("dd", {}, c.dashboard_url
        ? el("a", { href: c.dashboard_url, class: "dashboard", target: "_blank", rel: "noopener", text: "open" })
        : el("span", { class: "hint", text: "not yet" })));
  }

  function eventList(c) {
    const list = el("ol", { class: "events" });
    for (const e of c.events) {
      const when = new Date(e.time).toLocaleTimeString();
      list.append(el("li", {}, el("time", { datetime: new Date(e.time).toISOString(), text: when }), " ",
        el("b", { text: e.kind }), " " + e.reason + (e.message ? ": " + e.message : "")));
    }
    return el("details", { class: "events-box" }, el("summary", { text: "Last events" }), list);
  }

  function renderMine(data) {
    const box = document.getElementById("clusters");
    const seen = new Set();
    for (const c of data.clusters) {
      seen.add(c.name);
      const key = JSON.stringify(c);
      let card = box.querySelector('[data-name="' + CSS.escape(c.name) + '"]');
      if (card && card.dataset.key === key) continue;
      const open = card ? card.querySelector("details") && card.querySelector("details").open : false;
      const fresh = el("article", { class: "cluster", dataset: { name: c.name, status: c.status, key } },
        el("h3", {}, el("span", { class: "name", text: c.name }), " ", stateCell(c)),
        clusterFacts(c), eventList(c));
      if (open) fresh.querySelector("details").open = true;
      if (card && card.dataset.status === c.status) {
        // same state: keep the controls (and whatever the user is typing into them)
        const controls = card.querySelector(".controls");
        fresh.append(controls);
      } else {
        fresh.append(clusterControls(c));
      }
      if (card) card.replaceWith(fresh); else box.append(fresh);
    }
    for (const card of Array.from(box.children)) {
      if (!seen.has(card.dataset.name)) card.remove();
    }
    document.getElementById("empty").hidden = data.clusters.length > 0;
    const u = data.usage, l = data.limits;
    const part = (value, limit, fmt) => fmt(value) + (limit === null || limit === undefined ? "" : " of " + fmt(limit));
    document.getElementById("usage").textContent =
      "Using " + part(u.clusters, l.clusters, String) + " clusters, " + part(u.workers, l.workers, String) +
      " workers, " + part(u.cores, l.cores, cores) + " cores, " + part(u.memory, l.memory, bytes) + " memory.";
    // the snippet names the chosen cluster while it exists, else the newest one
    const code = document.getElementById("snippet");
    if (!seen.has(code.dataset.cluster || "")) {
      const newest = data.clusters.length ? data.clusters[data.clusters.length - 1].name : "";
      code.dataset.cluster = newest;
      code.textContent = snippet(newest);
    }
  }

  function setupMine() {
    const data = initialData();
    setupForm(data.options);
    renderMine(data);
    document.getElementById("copy-snippet").addEventListener("click", async () => {
      const text = document.getElementById("snippet").textContent;
      try { await navigator.clipboard.writeText(text); notice("Snippet copied."); }
      catch (exc) { notice("Copy failed: select the text and copy it by hand.", true); }
    });
    follow("/api/v1/pages/mine/events", renderMine);
  }

  // -- All clusters (admins) ---------------------------------------------------------------
  let view = { user: "", status: "", page: 1 };
  let source = null;

  function query(v) {
    const params = new URLSearchParams();
    if (v.user) params.set("user", v.user);
    if (v.status) params.set("status", v.status);
    if (v.page > 1) params.set("page", String(v.page));
    const text = params.toString();
    return text ? "?" + text : "";
  }

  function hubUserLink(name) {
    if (!hub) return null;
    const url = hub + "admin?" + new URLSearchParams({ name_filter: name }).toString();
    return el("a", { href: url, class: "hub-user", "aria-label": "Open " + name + " in the hub's admin page", text: "in hub" });
  }

  function stopAllButton(name) {
    const button = el("button", { type: "button", class: "danger", "aria-label": "Stop all clusters of " + name, text: "Stop all" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const result = await api("DELETE", "/api/v1/admin/users/" + encodeURIComponent(name) + "/clusters");
        notice("Stopping " + result.stopped + " cluster(s) of " + name + "…");
      } catch (exc) {
        notice(explain(exc), true);
        button.disabled = false;
      }
    });
    return button;
  }

  function renderAdmin(data) {
    const users = document.querySelector("#users tbody");
    users.replaceChildren(...data.users.map((u) => el("tr", { dataset: { user: u.name } },
      el("th", { scope: "row", text: u.name }), el("td", { class: "clusters", text: u.clusters }),
      el("td", { class: "workers", text: u.workers }), el("td", { class: "cores", text: cores(u.cores) }),
      el("td", { class: "memory", text: bytes(u.memory) }),
      el("td", {}, stopAllButton(u.name), " ", hubUserLink(u.name)))));
    const rows = document.querySelector("#all-clusters tbody");
    rows.replaceChildren(...data.clusters.map((c) => el("tr", { dataset: { name: c.name, status: c.status } },
      el("td", { class: "username", text: c.username }), el("th", { scope: "row", text: c.name }),
      el("td", {}, stateCell(c)), el("td", { class: "workers", text: c.workers.active + " / " + c.workers.requested }),
      el("td", { text: cores(c.cores) }), el("td", { text: bytes(c.memory) }),
      el("td", { class: "age", dataset: { start: c.start_time, stop: c.stop_time || "" }, text: age(c.start_time, c.stop_time) }),
      el("td", {}, c.dashboard_url ? el("a", { href: c.dashboard_url, target: "_blank", rel: "noopener", text: "open" }) : null),
      el("td", {}, stopButton(c, "Stop")))));
    if (!data.clusters.length) rows.append(el("tr", {}, el("td", { colspan: 9, text: "No clusters match." })));
    document.getElementById("count").textContent = "(" + data.total + ")";
    document.getElementById("page-info").textContent = "Page " + data.page + " of " + data.pages;
    document.getElementById("prev").disabled = data.page <= 1;
    document.getElementById("next").disabled = data.page >= data.pages;
    view.page = data.page;
  }

  async function showView() {
    history.replaceState(null, "", prefix + "/admin" + query(view));
    if (source) source.close();
    try {
      renderAdmin(await api("GET", "/api/v1/admin/overview" + query(view)));
    } catch (exc) {
      notice(explain(exc), true);
    }
    source = follow("/api/v1/admin/overview/events" + query(view), renderAdmin);
  }

  function setupAdmin() {
    const data = initialData();
    view = { user: data.filter.user, status: "", page: data.page };
    const wanted = new URLSearchParams(location.search).get("status") || "";
    view.status = wanted;
    document.getElementById("filter-user").value = view.user;
    document.getElementById("filter-status").value = wanted;
    renderAdmin(data);
    document.getElementById("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      view = { user: document.getElementById("filter-user").value.trim(),
        status: document.getElementById("filter-status").value, page: 1 };
      showView();
    });
    document.getElementById("prev").addEventListener("click", () => { view.page -= 1; showView(); });
    document.getElementById("next").addEventListener("click", () => { view.page += 1; showView(); });
    source = follow("/api/v1/admin/overview/events" + query(view), renderAdmin);
  }

  // ages tick without the server
  setInterval(() => {
    for (const node of document.querySelectorAll(".age[data-start]")) {
      node.textContent = age(Number(node.dataset.start), Number(node.dataset.stop) || null);
    }
  }, 1000);

  if (body.dataset.page === "mine") setupMine();
  else if (body.dataset.page === "admin") setupAdmin();
})();
