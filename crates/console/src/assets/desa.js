// TIMPORA village reporting page: one form, a queue on the phone for reports written without a
// connection, the receipts of what the hub stored. No framework; Indonesian first, English too.
"use strict";

const WORDS = {
  id: {
    title: "Lapor Desa", other: "English", logout: "Keluar",
    q_kind: "Apa yang Anda lihat?", k_RECRUITER_ACTIVITY: "Ada calo/perekrut datang ke desa",
    k_RESIDENT_PLANNING_DEPARTURE: "Warga mau berangkat kerja ke luar negeri",
    k_RESIDENT_DEPARTED: "Warga sudah berangkat ke luar negeri",
    k_RESIDENT_MISSING_ABROAD: "Warga di luar negeri hilang kontak",
    k_DOCUMENT_FORGERY_SUSPECTED: "Dokumen diduga dipalsukan (misalnya umur diubah)",
    q_when: "Kapan?", h_when: "Biarkan bila baru saja.", q_role: "Anda melapor sebagai",
    r_VILLAGE_HEAD: "Kepala desa", r_PIMPASA: "Petugas PIMPASA", r_BHABINKAMTIBMAS: "Bhabinkamtibmas", r_OTHER: "Lainnya",
    q_person: "Warga yang terlibat (bila tahu)", nik: "NIK (16 angka, dari KTP)", pname: "atau nama warga",
    q_recruiter: "Calo/perekrut (bila tahu)", phone: "Nomor HP", rname: "atau nama calo",
    q_summary: "Ceritakan singkat", h_summary: "Tanpa nama, NIK atau nomor HP: isikan di atas.",
    send: "Kirim laporan", sending: "Mengirim…", waiting: "Menunggu dikirim", sent: "Laporan yang sudah diterima",
    pick_kind: "Pilih apa yang Anda lihat.",
    nik_format: "NIK harus 16 angka.", phone_format: "Nomor HP: awali dengan +62, misalnya +6281234567890.",
    offline: "Tidak ada sinyal. Laporan disimpan di HP ini dan dikirim sendiri saat ada sinyal.",
    retry: "Hub belum bisa dihubungi. Laporan disimpan di HP ini dan dicoba lagi sebentar lagi.",
    login: "Sesi Anda berakhir. Masuk lagi untuk mengirim laporan yang menunggu.", login_link: "Masuk",
    queued: "Laporan disimpan di HP ini. Akan dikirim saat ada sinyal.",
    received: "Laporan diterima hub.", reference: "Nomor referensi", again: "Sudah tercatat sebelumnya (kiriman ulang).",
    st_waiting: "menunggu sinyal", st_refused: "perlu diperbaiki", fix: "Perbaiki", remove: "Hapus",
    seen: "Dilihat", got: "Diterima hub",
    none: "Belum ada laporan dalam 30 hari terakhir.", cached: "Tersimpan di HP; diperbarui saat ada sinyal.",
    people: "warga", recruiters: "calo",
  },
  en: {
    title: "Village report", other: "Bahasa Indonesia", logout: "Log out",
    q_kind: "What did you see?", k_RECRUITER_ACTIVITY: "A recruiter (calo) came to the village",
    k_RESIDENT_PLANNING_DEPARTURE: "A resident plans to go and work abroad",
    k_RESIDENT_DEPARTED: "A resident has left to work abroad",
    k_RESIDENT_MISSING_ABROAD: "A resident abroad cannot be reached",
    k_DOCUMENT_FORGERY_SUSPECTED: "Documents look forged (e.g. age changed)",
    q_when: "When?", h_when: "Leave it if it was just now.", q_role: "You report as",
    r_VILLAGE_HEAD: "Village head", r_PIMPASA: "PIMPASA officer", r_BHABINKAMTIBMAS: "Bhabinkamtibmas", r_OTHER: "Other",
    q_person: "Resident involved (if known)", nik: "NIK (16 digits, from the ID card)", pname: "or the resident's name",
    q_recruiter: "Recruiter (if known)", phone: "Phone number", rname: "or the recruiter's name",
    q_summary: "Tell it briefly", h_summary: "No names, NIK or phone numbers here: put them above.",
    send: "Send report", sending: "Sending…", waiting: "Waiting to be sent", sent: "Reports the hub received",
    pick_kind: "Choose what you saw.",
    nik_format: "A NIK has 16 digits.", phone_format: "Phone: start with +62, e.g. +6281234567890.",
    offline: "No signal. Reports are kept on this phone and sent by themselves when there is signal.",
    retry: "The hub cannot be reached yet. Reports are kept on this phone and tried again shortly.",
    login: "Your session ended. Log in again to send the waiting reports.", login_link: "Log in",
    queued: "Report kept on this phone. It will be sent when there is signal.",
    received: "The hub received the report.", reference: "Reference number", again: "Already recorded before (a resend).",
    st_waiting: "waiting for signal", st_refused: "needs fixing", fix: "Fix", remove: "Delete",
    seen: "Seen", got: "Received by the hub",
    none: "No reports in the last 30 days.", cached: "Kept on this phone; updated when there is signal.",
    people: "residents", recruiters: "recruiters",
  },
};
const $ = (id) => document.getElementById(id);
const lang = () => (localStorage.getItem("timpora.lang") === "en" ? "en" : "id");
const t = (k) => WORDS[lang()][k] ?? WORDS.id[k] ?? k;
let me = JSON.parse(localStorage.getItem("timpora.desa.me") || "null");
const key = (what) => `timpora.desa.${me ? me.username : "?"}.${what}`;
const load = (what) => JSON.parse(localStorage.getItem(key(what)) || "[]");
const save = (what, v) => localStorage.setItem(key(what), JSON.stringify(v));
let net = "";
let flushing = false;
let retryTimer = null;
let editing = null; // the id of a refused report loaded back into the form

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  e.append(...kids.filter((k) => k != null));
  return e;
}
function fmt(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "id-ID", {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  }).format(new Date(iso));
}
function newId() {
  if (crypto.randomUUID) return "hp-" + crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return "hp-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function words() {
  document.documentElement.lang = lang();
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  $("lang").textContent = t("other");
  render();
}

function setNet(state) {
  net = state;
  const n = $("net");
  n.hidden = !state;
  n.className = "net " + state;
  n.replaceChildren(state ? t(state) : "");
  if (state === "login") n.append(" ", el("a", { href: "/login", text: t("login_link") }));
}

// ---- the form --------------------------------------------------------------------------------

function clearErrors() {
  for (const p of document.querySelectorAll(".err")) { p.hidden = true; p.textContent = ""; }
  for (const i of document.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
}

// The gateway's field path (`report.persons[0].nik`) as the form's (`person.nik`).
function slot(field) {
  return field.replace(/^(report|meta)\./, "").replace(/^persons\[0\]/, "person")
    .replace(/^recruiters\[0\]/, "recruiter").replace("reporter_role", "reporterRole").replace("village_code", "name");
}

function showErrors(fields) {
  let first = null;
  for (const f of fields) {
    const where = document.querySelector(`.err[data-for="${slot(f.field)}"]`) || $("form-error");
    const text = (lang() === "id" && f.id) || f.description;
    where.textContent = where.textContent ? `${where.textContent} ${text}` : text;
    where.hidden = false;
    const input = where.previousElementSibling;
    if (input && input.matches("input,select,textarea")) input.setAttribute("aria-invalid", "true");
    first = first || where;
  }
  if (first) first.scrollIntoView({ block: "center" });
}

function readForm() {
  const f = $("report");
  const kind = f.querySelector("input[name=kind]:checked");
  const when = $("when").value;
  const body = {
    id: editing || newId(),
    kind: kind ? kind.value : "",
    reporterRole: $("role").value,
    time: when ? new Date(when).toISOString() : new Date().toISOString(),
    persons: [], recruiters: [], summary: $("summary").value.trim(),
  };
  const nik = $("nik").value.replace(/[\s.-]/g, ""), pname = $("pname").value.trim();
  if (nik || pname) body.persons.push({ nik, name: pname });
  const phone = $("phone").value.replace(/[\s-]/g, ""), rname = $("rname").value.trim();
  if (phone || rname) body.recruiters.push({ phone, name: rname });
  return body;
}

// Convenience checks of formats only; the hub's own checks decide.
function precheck(body) {
  const out = [];
  if (!body.kind) out.push({ field: "kind", description: t("pick_kind") });
  const p = body.persons[0], r = body.recruiters[0];
  if (p && p.nik && !/^\d{16}$/.test(p.nik)) out.push({ field: "person.nik", description: t("nik_format") });
  if (r && r.phone && !/^\+?\d{8,15}$/.test(r.phone)) out.push({ field: "recruiter.phone", description: t("phone_format") });
  return out;
}

function fill(body) {
  $("report").reset();
  for (const r of document.querySelectorAll("input[name=kind]")) r.checked = r.value === body.kind;
  $("role").value = body.reporterRole;
  const d = new Date(body.time);
  $("when").value = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const p = body.persons[0] || {}, r = body.recruiters[0] || {};
  $("nik").value = p.nik || ""; $("pname").value = p.name || "";
  $("phone").value = r.phone || ""; $("rname").value = r.name || "";
  $("summary").value = body.summary;
}

async function submit(ev) {
  ev.preventDefault();
  clearErrors();
  const body = readForm();
  const wrong = precheck(body);
  if (wrong.length) { showErrors(wrong); return; }
  localStorage.setItem("timpora.desa.role", body.reporterRole);
  // On the phone first: whatever happens to the connection or the page, it is not lost, and a
  // resend carries the same id.
  const queue = load("queue").filter((i) => i.body.id !== body.id);
  queue.push({ body, state: "waiting", at: new Date().toISOString() });
  save("queue", queue);
  editing = null;
  $("report").reset();
  $("role").value = body.reporterRole;
  render();
  $("send").disabled = true;
  $("send").textContent = t("sending");
  const result = await flush(body.id);
  $("send").disabled = false;
  $("send").textContent = t("send");
  if (result && result.refused) {
    // Refused now: back into the form, with the hub's words next to the fields.
    fix(body.id);
  } else if (!result) {
    receipt(null);
  }
}

// ---- the queue -------------------------------------------------------------------------------

// Send what waits, oldest first, one at a time. What happened to `watch`, when given.
async function flush(watch) {
  if (flushing || !me) return null;
  flushing = true;
  let outcome = null;
  try {
    for (const item of load("queue")) {
      if (item.state !== "waiting") continue;
      let res;
      try {
        res = await fetch("/api/desa/reports", {
          method: "POST",
          headers: { "content-type": "application/json", "x-timpora-console": "1" },
          body: JSON.stringify(item.body),
        });
      } catch {
        setNet(navigator.onLine ? "retry" : "offline");
        later();
        return outcome;
      }
      if (res.status === 401) { setNet("login"); return outcome; }
      const answer = await res.json().catch(() => ({}));
      if (res.ok) {
        acknowledged(item, answer);
        if (item.body.id === watch) outcome = { sent: true };
        continue;
      }
      if (res.status === 400 || res.status === 422) {
        const fields = answer.fields || [{ field: "", description: answer.error || res.statusText }];
        mark(item.body.id, { state: "refused", fields });
        if (item.body.id === watch) outcome = { refused: true, fields };
        continue;
      }
      // Busy, rate limited or the gateway away: try again later, in the same order.
      setNet("retry");
      later();
      return outcome;
    }
    setNet("");
    return outcome;
  } finally {
    flushing = false;
    render();
  }
}

function later() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(flush, 15000);
}

function mark(id, change) {
  save("queue", load("queue").map((i) => (i.body.id === id ? { ...i, ...change } : i)));
}

// The hub has it: the raw identifiers leave the phone; what is kept is the receipt.
function acknowledged(item, answer) {
  save("queue", load("queue").filter((i) => i.body.id !== item.body.id));
  const sent = load("sent").filter((s) => s.id !== item.body.id);
  const r = {
    id: item.body.id, reference: answer.reference, duplicate: !!answer.duplicate,
    kind: item.body.kind, time: item.body.time, received: new Date().toISOString(),
  };
  sent.unshift(r);
  save("sent", sent.slice(0, 50));
  receipt(r);
}

function receipt(r) {
  const box = $("receipt");
  if (!r) {
    box.className = "receipt queued";
    box.replaceChildren(el("strong", { text: t("queued") }));
  } else {
    box.className = "receipt ok";
    box.replaceChildren(el("div", {},
      el("strong", { text: "✓ " + t("received") }),
      el("p", {}, t("reference") + ": ", el("b", { id: "receipt-reference", text: String(r.reference) })),
      el("p", { class: "hint", text: `${t("k_" + r.kind)} · ${t("seen")} ${fmt(r.time)}` }),
      r.duplicate ? el("p", { class: "hint", text: t("again") }) : null));
  }
  box.hidden = false;
  box.focus();
}

function fix(id) {
  const item = load("queue").find((i) => i.body.id === id);
  if (!item) return;
  save("queue", load("queue").filter((i) => i.body.id !== id));
  editing = id;
  fill(item.body);
  clearErrors();
  if (item.fields) showErrors(item.fields);
  render();
}

// ---- lists -----------------------------------------------------------------------------------

function render() {
  const queue = load("queue");
  $("waiting-box").hidden = queue.length === 0;
  $("waiting").replaceChildren(...queue.map((i) => el("li", { "data-id": i.body.id, class: i.state },
    el("strong", { text: t("k_" + i.body.kind) }),
    el("span", { class: "hint", text: `${fmt(i.body.time)} · ${t("st_" + i.state)}` }),
    i.state === "refused" ? el("span", { class: "acts" },
      el("button", { type: "button", class: "small", text: t("fix"), onclick: () => fix(i.body.id) }),
      el("button", { type: "button", class: "small", text: t("remove"), onclick: () => {
        save("queue", load("queue").filter((q) => q.body.id !== i.body.id)); render();
      } })) : null)));
  // The hub's receipts, with what this phone sent since the last time it read them.
  const server = load("history");
  const known = new Set(server.map((r) => r.id));
  const rows = [...load("sent").filter((s) => !known.has(s.id)), ...server];
  $("history-note").textContent = rows.length === 0 ? t("none") : net ? t("cached") : "";
  $("history").replaceChildren(...rows.map((r) => el("li", { "data-id": r.id },
    el("strong", { text: t("k_" + r.kind) }),
    el("span", { class: "ref", text: `${t("reference")} ${r.reference}` }),
    el("span", { class: "hint", text: `${t("seen")} ${fmt(r.time)} · ${t("got")} ${fmt(r.received)}` +
      (r.persons ? ` · ${r.persons} ${t("people")}` : "") + (r.recruiters ? ` · ${r.recruiters} ${t("recruiters")}` : "") }))));
}

// The hub's receipts, kept on the phone; the answer (with the village), or null.
async function history() {
  try {
    const res = await fetch("/api/desa/reports", { headers: { "x-timpora-console": "1" } });
    if (res.status === 401) { setNet("login"); return null; }
    if (!res.ok) return null;
    const got = await res.json();
    save("history", got.reports);
    const ids = new Set(got.reports.map((r) => r.id));
    save("sent", load("sent").filter((s) => !ids.has(s.id)));
    render();
    return got;
  } catch { return null; /* offline: the copy on the phone stays */ }
}

// ---- start -----------------------------------------------------------------------------------

function showMe() {
  $("village").textContent = !me ? "" : [me.villageName ? `Desa ${me.villageName}` : me.village, me.place].filter(Boolean).join(" · ");
  $("who").textContent = me ? me.displayName || me.username : "";
}

async function start() {
  $("report").addEventListener("submit", submit);
  $("lang").addEventListener("click", () => {
    localStorage.setItem("timpora.lang", lang() === "id" ? "en" : "id");
    words();
  });
  $("logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST", headers: { "x-timpora-console": "1" } }).catch(() => {});
    location.href = "/login";
  });
  $("role").value = localStorage.getItem("timpora.desa.role") || "VILLAGE_HEAD";
  window.addEventListener("online", () => { setNet(""); flush(); history(); });
  window.addEventListener("offline", () => setNet("offline"));
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/desa/sw.js", { scope: "/desa/" }).catch(() => {});
  showMe();
  words();
  if (!navigator.onLine) setNet("offline");
  try {
    const res = await fetch("/api/me", { headers: { "x-timpora-console": "1" } });
    if (res.status === 401) { location.href = "/login"; return; }
    if (res.ok) {
      const got = await res.json();
      const kept = me && me.username === got.username ? me : {};
      me = { ...kept, username: got.username, displayName: got.displayName };
      const mine = await history();
      if (mine) Object.assign(me, { village: mine.village, villageName: mine.villageName, place: mine.place });
      localStorage.setItem("timpora.desa.me", JSON.stringify(me));
      showMe();
    }
  } catch {
    // Offline: the page, the queue and the receipts come from the phone.
  }
  render();
  $("when").max = new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  if (navigator.onLine) flush();
}

start();
