"use strict";
applyI18n();
document.getElementById("lang-toggle").addEventListener("click", toggleLang);
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("login-error");
  err.hidden = true;
  const res = await fetch("/api/login", {
    method: "POST",
    headers: { "content-type": "application/json", "x-timpora-console": "1" },
    body: JSON.stringify({
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    }),
  });
  if (res.ok) { const b = await res.json().catch(() => ({})); location.href = b.home || "/"; return; }
  err.textContent = t(res.status === 429 ? "login_locked" : "login_failed");
  err.hidden = false;
  document.getElementById("password").select();
});
