// TIMPORA operations console: alerts live (server-sent events), an alert's evidence and
// handling, the region overview and (for auditors) the access records. No framework, no CDN.
"use strict";

const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
const STATUSES = ["OPEN", "ACKNOWLEDGED", "ASSIGNED", "ESCALATED", "RESOLVED", "WITHDRAWN"];
const RULES = ["R1", "R2", "R3", "R4", "R5", "R6"];
const state = {
  me: null,
  alerts: new Map(),
  showResolved: false,
  filters: JSON.parse(sessionStorage.getItem("timpora.filters") || "{}"),
  fresh: new Set(),
  current: null, // the alert shown on its page
};

// ---- helpers -------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, opts = {}) {
  const res = await fetch(path, {
    ...opts,
    headers: { "content-type": "application/json", "x-timpora-console": "1", ...(opts.headers || {}) },
  });
  if (res.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { const e = new Error(body.error || res.statusText); e.status = res.status; throw e; }
  return body;
}

function toast(msg, kind) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = "show " + (kind || "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 5000);
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "id-ID", {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(d);
}

// A label for a field or role name; the name itself where none is known.
function label(prefix, name) { return I18N[lang()][prefix + name] ?? name; }

function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return t("ago_s");
  if (s < 3600) return `${Math.floor(s / 60)} ${t("ago_m")}`;
  if (s < 86400) return `${Math.floor(s / 3600)} ${t("ago_h")}`;
  return fmtTime(iso);
}

const sevName = (s) => (s || "").replace("SEVERITY_", "");
const statusName = (s) => (s || "").replace("ALERT_STATUS_", "");
const sevRank = (s) => SEVERITIES.length - SEVERITIES.indexOf(sevName(s));
const sevBadge = (s) => el("span", { class: "sev sev-" + sevName(s).toLowerCase(), text: t("sev_" + sevName(s)) });
const statusBadge = (s) => el("span", { class: "status st-" + statusName(s).toLowerCase(), text: t("st_" + statusName(s)) });
const ruleLabel = (id) => `${id} · ${t(id)}`;
const alertOf = (r) => r.alert || {};

function link(href, text, props) {
  return el("a", { href, ...(props || {}), onclick: (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault(); go(href);
  } }, text);
}

function go(href) { history.pushState({}, "", href); route(); }

// ---- live updates --------------------------------------------------------------------------

function setLive(s) {
  const l = document.getElementById("live");
  l.dataset.state = s;
  l.textContent = t(s === "on" ? "live_on" : s === "off" ? "live_off" : "live_connecting");
}

function connect() {
  const es = new EventSource("/api/stream");
  es.addEventListener("ready", async () => {
    setLive("on");
    await loadAlerts(); // catch up with whatever changed while disconnected
    refreshView();
  });
  es.addEventListener("alert", (ev) => {
    const r = JSON.parse(ev.data);
    const id = alertOf(r).id;
    const known = state.alerts.has(id);
    state.alerts.set(id, r);
    if (!known) { state.fresh.add(id); setTimeout(() => { state.fresh.delete(id); }, 15000); }
    onChange(r, known);
  });
  es.onerror = () => {
    setLive("off");
    // A stream refused or ended because the session did: back to the login page.
    setTimeout(() => { api("/api/me").catch(() => {}); }, 2000);
    // Refused outright (the gateway or NATS is away): the browser gives up, so try again.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  };
}

async function loadAlerts() {
  const list = await api("/api/alerts" + (state.showResolved ? "?all=1" : ""));
  state.alerts = new Map(list.map((r) => [alertOf(r).id, r]));
}

function onChange(r, known) {
  updateTitle();
  const page = currentPage();
  if (page.name === "list") renderListBody();
  else if (page.name === "alert" && page.id === alertOf(r).id) { state.current.record = r; renderAlertState(); }
  else if (page.name === "overview") scheduleOverview();
  if (!known && page.name !== "list") toast(`${t("new_alert")}: ${ruleLabel(alertOf(r).ruleId)}`);
}

// ---- pages ---------------------------------------------------------------------------------

function currentPage() {
  const p = location.pathname;
  if (p.startsWith("/alerts/")) return { name: "alert", id: decodeURIComponent(p.slice(8)) };
  if (p.startsWith("/subjects/")) return { name: "subject", id: decodeURIComponent(p.slice(10)) };
  if (p === "/overview") return { name: "overview" };
  if (p === "/audit") return { name: "audit" };
  return { name: "list" };
}

function main() { return document.getElementById("main"); }

function route() {
  const page = currentPage();
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.nav === page.name || (["alert", "subject"].includes(page.name) && a.dataset.nav === "list")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (page.name === "alert") renderAlert(page.id);
  else if (page.name === "subject") renderSubject(page.id);
  else if (page.name === "overview") renderOverview();
  else if (page.name === "audit") renderAudit();
  else renderList();
}

function refreshView() {
  const page = currentPage();
  if (page.name === "list") renderListBody();
}

// -- alert list

function saveFilters() { sessionStorage.setItem("timpora.filters", JSON.stringify(state.filters)); }

function select(id, label, options, value, onchange) {
  return el("label", { class: "filter", for: id }, el("span", { text: label }),
    el("select", { id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, text]) => el("option", { value: v, selected: v === value }, text))));
}

function renderList() {
  const f = state.filters;
  const m = main();
  m.replaceChildren();
  const provinces = new Map();
  const regencies = new Map();
  for (const r of state.alerts.values()) {
    if (r.province) provinces.set(r.province, (r.regencyName || r.province).split(", ").pop());
    if (r.regency && (!f.province || r.regency.startsWith(f.province + "."))) regencies.set(r.regency, (r.regencyName || r.regency).split(", ")[0]);
  }
  const sorted = (map) => [...map.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  const bar = el("form", { class: "filters", "aria-label": t("filters"), onsubmit: (e) => e.preventDefault() },
    select("f-province", t("f_province"), [["", t("all")], ...sorted(provinces)], f.province || "", (v) => { f.province = v; f.regency = ""; saveFilters(); renderList(); }),
    select("f-regency", t("f_regency"), [["", t("all")], ...sorted(regencies)], f.regency || "", (v) => { f.regency = v; saveFilters(); renderListBody(); }),
    select("f-severity", t("f_severity"), [["", t("all")], ...SEVERITIES.map((s) => [s, "≥ " + t("sev_" + s)])], f.severity || "", (v) => { f.severity = v; saveFilters(); renderListBody(); }),
    select("f-rule", t("f_rule"), [["", t("all")], ...RULES.map((r) => [r, ruleLabel(r)])], f.rule || "", (v) => { f.rule = v; saveFilters(); renderListBody(); }),
    select("f-status", t("f_status"), [["", t("open_only")], ...STATUSES.map((s) => [s, t("st_" + s)])], f.status || "", async (v) => {
      f.status = v; saveFilters();
      const want = v === "RESOLVED" || v === "WITHDRAWN";
      if (want !== state.showResolved) { state.showResolved = want; await loadAlerts(); }
      renderListBody();
    }),
  );
  m.append(
    el("h1", { text: t("alerts_title") }),
    bar,
    el("p", { id: "alert-count", class: "muted", "aria-live": "polite" }),
    el("table", { id: "alert-list", class: "alerts" },
      el("thead", {}, el("tr", {},
        ["col_severity", "col_rule", "col_summary", "col_region", "col_time", "col_status"].map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {})),
  );
  renderListBody();
}

function matches(r) {
  const f = state.filters;
  const a = alertOf(r);
  const st = statusName(r.status);
  if (f.province && r.province !== f.province) return false;
  if (f.regency && r.regency !== f.regency) return false;
  if (f.severity && sevRank(a.severity) < sevRank(f.severity)) return false;
  if (f.rule && a.ruleId !== f.rule) return false;
  if (f.status ? st !== f.status : st === "RESOLVED") return false;
  return true;
}

function renderListBody() {
  const body = document.querySelector("#alert-list tbody");
  if (!body) return;
  // Re-rendering must not take the keyboard focus away from the row it was on.
  const focused = document.activeElement?.closest?.("#alert-list tr")?.dataset.id;
  const rows = [...state.alerts.values()].filter(matches).sort((x, y) => {
    const a = alertOf(x), b = alertOf(y);
    return (sevRank(b.severity) - sevRank(a.severity)) || String(b.time).localeCompare(String(a.time));
  });
  body.replaceChildren(...rows.map((r) => {
    const a = alertOf(r);
    return el("tr", { dataset: { id: a.id, status: statusName(r.status) }, class: state.fresh.has(a.id) ? "fresh" : "" },
      el("td", { "data-label": t("col_severity") }, sevBadge(a.severity)),
      el("td", { "data-label": t("col_rule") }, ruleLabel(a.ruleId)),
      el("td", { "data-label": t("col_summary") }, link("/alerts/" + encodeURIComponent(a.id), a.summary, { class: "alert-link" }),
        (r.extensions || []).length ? el("span", { class: "grown", text: ` · ${t("grown")} (${a.evidence.length} ${t("pieces")})` }) : null,
        a.late ? el("span", { class: "late", text: ` · ${t("late")}` }) : null),
      el("td", { "data-label": t("col_region") }, r.regionName || a.region),
      el("td", { "data-label": t("col_time") }, el("time", { datetime: a.time, title: fmtTime(a.time) }, ago(a.time))),
      el("td", { "data-label": t("col_status") }, statusBadge(r.status), r.assignee ? el("div", { class: "muted", text: r.assignee }) : null),
    );
  }));
  document.getElementById("alert-count").textContent = rows.length ? `${rows.length} ${t("count")}` : t("none");
  if (focused) body.querySelector(`tr[data-id="${CSS.escape(focused)}"] a`)?.focus();
}

// The tab's title counts the alerts nobody has acknowledged yet, so a background tab shows them.
function updateTitle() {
  const fresh = [...state.alerts.values()].filter((r) => statusName(r.status) === "OPEN").length;
  document.title = (fresh ? `(${fresh}) ` : "") + "TIMPORA — " + t("console_title");
}

// -- one alert

const ALLOWED = {
  acknowledge: ["OPEN"],
  assign: ["OPEN", "ACKNOWLEDGED", "ASSIGNED"],
  escalate: ["OPEN", "ACKNOWLEDGED", "ASSIGNED"],
  resolve: ["OPEN", "ACKNOWLEDGED", "ASSIGNED", "ESCALATED"],
};

async function renderAlert(id) {
  const m = main();
  m.replaceChildren(el("p", { class: "muted", text: "…" }));
  let got;
  try { got = await api("/api/alerts/" + encodeURIComponent(id)); }
  catch (e) { m.replaceChildren(link("/", t("back"), { class: "back" }), el("p", { class: "error", role: "alert", text: `${t("error")}: ${e.message}` })); return; }
  state.current = got;
  const a = alertOf(got.record);
  m.replaceChildren(
    link("/", t("back"), { class: "back" }),
    el("h1", { id: "alert-title", tabindex: "-1" }, sevBadge(a.severity), " ", ruleLabel(a.ruleId)),
    el("div", { class: "alert-page" },
      el("div", { class: "col-main" },
        el("div", { id: "alert-state" }),
        el("section", { "aria-labelledby": "h-evidence" },
          el("h2", { id: "h-evidence", text: t("evidence") }),
          el("ol", { id: "evidence", class: "timeline" }, got.events.map(evidenceItem)),
          got.withheld.length ? el("div", { class: "withheld" }, el("h3", { text: t("withheld") }), el("ul", {}, got.withheld.map((w) => el("li", { text: w })))) : null)),
      el("div", { id: "alert-side", class: "col-side" })),
  );
  renderAlertState();
  document.getElementById("alert-title").focus?.();
}

function renderAlertState() {
  const box = document.getElementById("alert-state");
  if (!box || !state.current) return;
  const r = state.current.record;
  const a = alertOf(r);
  const st = statusName(r.status);
  const details = el("dl", { class: "details" },
    el("dt", { text: t("summary") }), el("dd", { text: a.summary }),
    (r.extensions || []).length ? [el("dt", { text: t("grown") }),
      el("dd", { id: "grown", text: `${r.extensions.length}× · ${a.evidence.length} ${t("pieces")}` })] : null,
    a.late ? [el("dt", { text: t("late_title") }), el("dd", { id: "late", text: t("late") })] : null,
    a.extends ? [el("dt", { text: t("continues") }),
      el("dd", {}, link("/alerts/" + encodeURIComponent(a.extends), a.extends))] : null,
    el("dt", { text: t("col_status") }), el("dd", { id: "status" }, statusBadge(r.status),
      r.resolution ? ` (${t("res_" + r.resolution.replace("RESOLUTION_", ""))})` : ""),
    el("dt", { text: t("entity") }), el("dd", {}, link("/subjects/" + encodeURIComponent(a.groupKey), a.groupKey, { id: "subject-link", class: "code", title: t("subject_page") })),
    el("dt", { text: t("region") }), el("dd", { text: r.regionName ? `${r.regionName} (${a.region})` : a.region }),
    el("dt", { text: t("raised") }), el("dd", {}, el("time", { datetime: a.time }, fmtTime(a.time))),
    el("dt", { text: t("rule_version") }), el("dd", { text: `${a.ruleId} @ ${a.ruleVersion}` }),
    a.classification ? [el("dt", { text: t("classification") }),
      el("dd", { id: "classification", text: t("class_" + a.classification.replace("CLASSIFICATION_", "")) })] : null,
    r.assignee ? [el("dt", { text: t("col_assignee") }), el("dd", { id: "assignee", text: r.assignee })] : null,
    r.caseId ? [el("dt", { text: t("case") }), el("dd", {}, el("code", { id: "case-id", text: r.caseId }))] : null,
  );
  const typed = document.getElementById("note")?.value || "";
  box.replaceChildren(details,
    el("aside", { class: "guide", "aria-labelledby": "h-guide" },
      el("h2", { id: "h-guide", text: t("guide") }), el("p", { id: "guide", text: t("guide_" + a.ruleId) })));
  document.getElementById("alert-side").replaceChildren(actionsPanel(r, st), historyPanel(r));
  const note = document.getElementById("note");
  if (note) note.value = typed;
}

function actionsPanel(r, st) {
  const me = state.me;
  const section = el("section", { "aria-labelledby": "h-actions", class: "actions" }, el("h2", { id: "h-actions", text: t("actions") }));
  if (!me.mayAct) { section.append(el("p", { class: "muted", text: t("no_rights") })); return section; }
  const note = el("textarea", { id: "note", rows: 2, maxlength: 2000 });
  const doAct = async (action, extra) => {
    try {
      const rec = await api(`/api/alerts/${encodeURIComponent(alertOf(r).id)}/${action}`, {
        method: "POST",
        body: JSON.stringify({ note: note.value, expectedVersion: Number(r.version || 0), ...extra }),
      });
      state.current.record = rec;
      state.alerts.set(alertOf(rec).id, rec);
      renderAlertState();
      toast(t("done"), "ok");
    } catch (e) {
      if (e.status === 409) {
        toast(t("conflict"), "warn");
        const fresh = state.alerts.get(alertOf(r).id);
        if (fresh) { state.current.record = fresh; renderAlertState(); }
      } else toast(`${t("error")}: ${e.message}`, "warn");
    }
  };
  const can = (a) => ALLOWED[a].includes(st);
  const tppo = ["R4", "R6"].includes(alertOf(r).ruleId);
  const kind = el("select", { id: "case-kind", "aria-label": t("case_kind") },
    el("option", { value: "tppo", selected: tppo, text: t("kind_tppo") }),
    el("option", { value: "non_procedural_departure", selected: !tppo, text: t("kind_npd") }));
  const unit = el("select", { id: "assignee-select", "aria-label": t("assign_to") }, me.units.map((u) => el("option", { value: u, text: u })));
  section.append(
    el("label", { for: "note", text: t("note") }), note,
    el("div", { class: "buttons" },
      el("button", { id: "btn-acknowledge", class: "primary", disabled: !can("acknowledge"), onclick: () => doAct("acknowledge") }, t("acknowledge")),
      el("span", { class: "group" }, unit,
        el("button", { id: "btn-assign", disabled: !can("assign"), onclick: () => doAct("assign", { assignee: unit.value }) }, t("assign"))),
      el("span", { class: "group" }, kind,
        el("button", { id: "btn-escalate", disabled: !can("escalate"), onclick: () => doAct("escalate", { caseKind: kind.value }) }, t("escalate"))),
    ),
  );
  if (me.mayResolve) {
    section.append(el("div", { class: "buttons" },
      el("button", { id: "btn-resolve-confirmed", disabled: !can("resolve"), onclick: () => doAct("resolve", { resolution: "confirmed" }) }, t("resolve_confirmed")),
      el("button", { id: "btn-resolve-false", disabled: !can("resolve"), onclick: () => doAct("resolve", { resolution: "false_positive" }) }, t("resolve_false")),
    ));
  } else section.append(el("p", { class: "muted", text: t("resolve_supervisor") }));
  return section;
}

function historyPanel(r) {
  const items = (r.history || []).map((h) => el("li", {},
    el("time", { datetime: h.time }, fmtTime(h.time)), " — ",
    statusBadge(h.fromStatus), " → ", statusBadge(h.toStatus), " ",
    // The gateway vouches for the identity (actor); the operator and role are as it states them.
    h.actor === "hub/correlator"
      ? el("span", { class: "who-did correlator" }, `${t("by")} `, el("strong", { class: "actor", text: t("correlator") }))
      : el("span", { class: "who-did" }, `${t("by")} `, el("strong", { class: "operator", text: h.operator || "?" }),
        h.role ? ` (${h.role})` : "", ` · ${t("stated_by")} `, el("span", { class: "actor", text: h.actor })),
    h.assignee ? ` · ${h.assignee}` : "", h.caseId ? ` · ${h.caseId}` : "",
    h.note ? el("div", { class: "note", text: h.note }) : null,
    (h.evidence || []).length ? el("div", { class: "late-evidence" }, `${t("late_evidence")}: `,
      (h.evidence || []).map((k) => el("code", { text: k + " " }))) : null));
  return el("section", { "aria-labelledby": "h-history" },
    el("h2", { id: "h-history", text: t("history") }),
    items.length ? el("ol", { id: "history", class: "history" }, items) : el("p", { id: "history", class: "muted", text: t("no_history") }));
}

const PAYLOADS = ["passportInterview", "departureCheck", "cpmiStatus", "repatriation", "companyLicence",
  "communityReport", "recruiterReport", "recommendation", "investigation", "victimService", "prosecution", "caseStatusChanged"];
const FACTS = ["outcome", "stage", "reason", "status", "kind", "channel", "checkpointCode", "p3miLicence",
  "destinationCountry", "country", "declaredPurpose", "villageCode", "homeVillage", "reporterRole", "indicators", "summary"];

function evidenceItem(e) {
  const key = PAYLOADS.find((k) => e[k]) || "";
  const p = e[key] || {};
  const typeKey = "ev_" + (e.type || "").split(".").slice(-2, -1)[0];
  const facts = FACTS.filter((f) => p[f] !== undefined && p[f] !== "" && !(Array.isArray(p[f]) && !p[f].length))
    .map((f) => {
      const v = Array.isArray(p[f]) ? p[f].map(short).join(", ") : short(p[f]);
      return el("li", {}, el("span", { class: "k", text: label("f_", f) }), " ", el("span", { class: "v", text: v }));
    });
  return el("li", { class: "event agency-" + e.agency },
    el("div", { class: "when" }, el("time", { datetime: e.time }, fmtTime(e.time))),
    el("div", { class: "what" },
      el("span", { class: "agency", text: e.agency }), " ",
      el("strong", { text: t(typeKey) }), " · ", el("span", { class: "muted", text: e.source }),
      el("div", { class: "where", text: e.regionName ? `${e.regionName} (${e.region})` : e.region }),
      el("ul", { class: "entities" }, (e.entities || []).map((x) =>
        el("li", {}, el("span", { class: "k", text: label("r_", x.role || (x.kind || "").replace("ENTITY_KIND_", "").toLowerCase()) }), " ", el("code", { text: x.id })))),
      facts.length ? el("ul", { class: "facts" }, facts) : null,
      el("div", { class: "muted ref", text: `ref ${e.id}` })));
}

function short(v) {
  return String(v).replace(/^(INTERVIEW_OUTCOME|DEPARTURE_OUTCOME|CPMI_STAGE|REPATRIATION_REASON|LICENCE_STATUS|COMMUNITY_REPORT_KIND|REPORT_CHANNEL|INDICATOR|TRAVEL_PURPOSE|REPORTER_ROLE|CASE_STATUS|CASE_KIND)_/, "");
}

// -- one subject: its alerts and every event that mentions it, as one timeline

async function renderSubject(id) {
  const m = main();
  m.replaceChildren(el("p", { class: "muted", text: "…" }));
  let got;
  try { got = await api("/api/subjects/" + encodeURIComponent(id)); }
  catch (e) { m.replaceChildren(link("/", t("back"), { class: "back" }), el("p", { class: "error", role: "alert", text: `${t("error")}: ${e.message}` })); return; }
  if (currentPage().name !== "subject") return;
  const alertRows = got.alerts.map((r) => {
    const a = alertOf(r);
    return el("tr", { dataset: { id: a.id } },
      el("td", {}, sevBadge(a.severity)),
      el("td", {}, ruleLabel(a.ruleId)),
      el("td", {}, link("/alerts/" + encodeURIComponent(a.id), a.summary, { class: "alert-link" })),
      el("td", {}, el("time", { datetime: a.time }, fmtTime(a.time))),
      el("td", {}, statusBadge(r.status)));
  });
  m.replaceChildren(
    link("/", t("back"), { class: "back" }),
    el("h1", { id: "subject-title", tabindex: "-1" }, t("subject") + " ", el("code", { text: got.subject })),
    el("section", { "aria-labelledby": "h-subject-alerts" },
      el("h2", { id: "h-subject-alerts", text: t("subject_alerts") }),
      alertRows.length
        ? el("table", { id: "subject-alerts", class: "alerts" },
          el("thead", {}, el("tr", {}, ["col_severity", "col_rule", "col_summary", "col_time", "col_status"].map((k) => el("th", { scope: "col", text: t(k) })))),
          el("tbody", {}, alertRows))
        : el("p", { id: "subject-alerts", class: "muted", text: t("none_subject_alerts") })),
    el("section", { "aria-labelledby": "h-subject-events" },
      el("h2", { id: "h-subject-events", text: t("subject_events") }),
      el("ol", { id: "subject-events", class: "timeline" }, got.events.map(evidenceItem)),
      got.withheld ? el("p", { id: "subject-withheld", class: "withheld", text: `${t("withheld")}: ${got.withheld}` }) : null,
      got.truncated ? el("p", { class: "muted", text: t("subject_truncated") }) : null),
  );
  document.getElementById("subject-title").focus?.();
}

// -- overview

let overviewTimer = null;
function scheduleOverview() { clearTimeout(overviewTimer); overviewTimer = setTimeout(renderOverview, 500); }

async function renderOverview() {
  const m = main();
  let rows, villages;
  try { [rows, villages] = await Promise.all([api("/api/overview"), api("/api/desa/villages").catch(() => null)]); }
  catch (e) { m.replaceChildren(el("p", { class: "error", role: "alert", text: e.message })); return; }
  if (currentPage().name !== "overview") return;
  const max = Math.max(1, ...rows.map((r) => r.open));
  rows.sort((x, y) => (y.open - x.open) || String(x.name).localeCompare(String(y.name)));
  m.replaceChildren(
    el("h1", { text: t("overview_title") }),
    el("table", { id: "overview", class: "overview" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("region") }), el("th", { scope: "col", text: t("col_open") }),
        SEVERITIES.map((s) => el("th", { scope: "col", text: t("sev_" + s) })))),
      el("tbody", {}, rows.map((r) => el("tr", { dataset: { regency: r.regency } },
        el("th", { scope: "row" }, link("/", r.name || r.regency, { onclick: (e) => {
          e.preventDefault();
          state.filters = { province: r.regency.split(".")[0], regency: r.regency }; saveFilters(); go("/");
        } })),
        el("td", { class: "open-count" }, el("span", { class: "num", text: String(r.open) }),
          el("span", { class: "bar", dataset: { w: Math.round(100 * r.open / max) } })),
        SEVERITIES.map((s) => el("td", { text: String(r[s.toLowerCase()]) })))))),
    el("h2", { text: t("village_reports_title") }),
    !villages ? el("p", { class: "error", text: t("error") })
      : villages.villages.length === 0 ? el("p", { class: "muted", text: t("none_village_reports") })
      : el("table", { id: "village-reports", class: "overview" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("col_village") }), el("th", { scope: "col", text: t("region") }),
          el("th", { scope: "col", text: t("col_reports") }), el("th", { scope: "col", text: t("col_last_report") }))),
        el("tbody", {}, [...villages.villages].sort((x, y) => y.reports - x.reports).map((v) => el("tr", { dataset: { village: v.village } },
          el("th", { scope: "row", text: v.name ? `${v.name} (${v.village})` : v.village }),
          el("td", { text: v.place || "" }),
          el("td", { class: "reports", text: String(v.reports) }),
          el("td", { text: fmtTime(v.lastReceived) }))))),
  );
  for (const b of m.querySelectorAll(".bar")) b.style.width = (b.dataset.w / 10) + "rem";
}

// -- audit

function fieldRow(id, labelKey, props) {
  return el("label", { for: id }, t(labelKey), " ", el("input", { id, name: id, ...(props || {}) }));
}

async function renderAudit() {
  const m = main();
  let rows, logs;
  try { [rows, logs] = await Promise.all([api("/api/audit/access"), api("/api/audit/logs")]); }
  catch (e) { m.replaceChildren(el("p", { class: "error", role: "alert", text: e.message })); return; }
  const results = el("div", { id: "replay-results" });
  const explained = el("div", { id: "explanation" });
  const query = () => {
    const q = new URLSearchParams();
    for (const k of ["stream", "token", "since", "until", "agency", "type"]) {
      const v = document.getElementById(`r-${k}`).value.trim();
      if (v) q.set(k, v);
    }
    return q;
  };
  const exportLink = (format, key) => el("a", { class: "export", id: `export-${format}`, href: "#", onclick: (e) => {
    const q = query(); q.set("format", format); e.target.href = `/api/audit/replay?${q}`;
  } }, t(key));
  const search = async (e) => {
    e.preventDefault();
    let found;
    try { found = await api(`/api/audit/replay?${query()}`); }
    catch (err) { results.replaceChildren(el("p", { class: "error", role: "alert", text: err.message })); return; }
    results.replaceChildren(el("p", { text: `${found.length} ${t("records")}` }),
      el("table", { id: "replay", class: "alerts" },
        el("thead", {}, el("tr", {}, ["col_seq", "col_stored", "col_subject", "col_what"].map((k) => el("th", { scope: "col", text: t(k) })))),
        el("tbody", {}, found.map((r) => el("tr", {},
          el("td", { text: String(r.sequence) }),
          el("td", {}, fmtTime(r.stored)),
          el("td", {}, el("code", { text: r.subject })),
          el("td", { text: r.event ? `${r.event.type} · ${r.event.source}` : "" }))))));
  };
  const explain = async (e) => {
    e.preventDefault();
    const id = document.getElementById("x-alert").value.trim();
    if (!id) return;
    let x;
    try { x = await api(`/api/audit/explain/${encodeURIComponent(id)}`); }
    catch (err) { explained.replaceChildren(el("p", { class: "error", role: "alert", text: err.message })); return; }
    explained.replaceChildren(...[
      el("p", {}, el("strong", { text: `${x.ruleId} ${x.ruleName || ""}` }), ` (${x.ruleVersion}, ${x.ruleSource})`),
      el("p", { class: "rule", text: x.rule }),
      el("ol", { id: "explained-events" }, (x.events || []).map((ev) => el("li", {},
        fmtTime(ev.time), " ", el("code", { text: ev.key }), ` ${ev.type}`,
        el("ul", {}, (ev.conditions || []).map((c) => el("li", { class: c.met ? "met" : "not-met" },
          `${ev.clause}: ${c.asks} — ${c.had || "—"} (${t(c.met ? "met" : "not_met")})`)))))),
      (x.later || []).length ? el("ul", { id: "explained-later" }, x.later.map((l) => el("li", { text: `${l.change} ${l.alertId}: ${l.why}` }))) : null,
      el("p", { id: "reproduced", class: x.reproduced ? "ok" : "error", text: t(x.reproduced ? "reproduced_yes" : "reproduced_no") }),
    ].filter(Boolean));
  };
  m.replaceChildren(
    el("h1", { text: t("audit_logs_title") }),
    el("table", { id: "logs", class: "alerts" },
      el("thead", {}, el("tr", {}, ["col_log", "col_size", "col_cosigners", "col_verified"].map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, (logs.logs || []).map((l) => el("tr", { dataset: { log: l.log } },
        el("td", {}, el("code", { text: l.origin || l.log })),
        el("td", { class: "size", text: String(l.size || 0) }),
        el("td", { class: "cosigners", text: (l.cosigners || []).join(", ") || "—" }),
        el("td", { class: "verified" }, l.verifiedAt
          ? [el("strong", { text: t(l.intact ? "intact" : "not_intact") }), " ", fmtTime(l.verifiedAt), ` · ${l.verification}`]
          : t("not_verified")))))),
    el("h2", { text: t("audit_replay_title") }),
    el("form", { id: "replay-form", onsubmit: search },
      el("label", { for: "r-stream" }, t("f_stream"), " ", el("select", { id: "r-stream" },
        ["events", "alerts", "access"].map((v) => el("option", { value: v, text: t(`stream_${v}`) })))),
      fieldRow("r-token", "f_token"), fieldRow("r-since", "f_since", { placeholder: "2026-12-01T00:00:00Z" }),
      fieldRow("r-until", "f_until"), fieldRow("r-agency", "f_agency", { placeholder: "imigrasi" }),
      fieldRow("r-type", "f_type", { placeholder: "timpora.imigrasi.passport_interview.v1" }),
      el("button", { type: "submit", id: "r-search", text: t("search") }), " ",
      exportLink("ndjson", "export_ndjson"), " ", exportLink("cloudevents", "export_cloudevents")),
    results,
    el("h2", { text: t("audit_explain_title") }),
    el("form", { id: "explain-form", onsubmit: explain },
      fieldRow("x-alert", "f_alert", { placeholder: "alr_…" }), el("button", { type: "submit", id: "x-go", text: t("explain") })),
    explained,
    el("h2", { text: t("audit_title") }),
    el("table", { id: "access", class: "alerts" },
      el("thead", {}, el("tr", {}, ["col_time", "col_alert", "col_reader", "col_operator", "col_events"].map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, fmtTime(r.time)),
        el("td", {}, r.alertId ? [r.action ? `${r.action} ` : "", el("code", { text: r.alertId })]
          : r.subject ? [t("subject") + " ", el("code", { text: r.subject })]
          : [r.action || "", r.closing ? ` · ${t("closed")}` : ""]),
        el("td", { text: r.reader }),
        el("td", { class: "operator", text: r.operator || "" }),
        el("td", { text: r.refused ? `${t("refused")}: ${r.refused}` : r.action ? String(r.returned || 0) : `${r.events || 0} / ${r.withheld || 0}` }))))),
  );
}

// ---- start ---------------------------------------------------------------------------------

async function start() {
  applyI18n();
  state.me = await api("/api/me");
  document.getElementById("me").textContent = `${state.me.displayName} (${state.me.username})`;
  document.getElementById("nav-audit").hidden = !state.me.mayAudit;
  document.getElementById("lang-toggle").addEventListener("click", () => { toggleLang(); setLive(document.getElementById("live").dataset.state); route(); });
  document.getElementById("logout").addEventListener("click", async () => { await api("/api/logout", { method: "POST" }); location.href = "/login"; });
  for (const a of document.querySelectorAll("nav a")) a.addEventListener("click", (e) => { e.preventDefault(); go(a.getAttribute("href")); });
  window.addEventListener("popstate", route);
  setLive("connecting");
  state.showResolved = ["RESOLVED", "WITHDRAWN"].includes(state.filters.status);
  await loadAlerts();
  updateTitle();
  route();
  connect();
  // Relative times ("5 menit lalu") stay true.
  setInterval(() => { if (currentPage().name === "list") renderListBody(); }, 30000);
}

start().catch((e) => { if (e.message !== "not logged in") toast(`${t("error")}: ${e.message}`, "warn"); });
