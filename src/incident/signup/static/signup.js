// The sign-up page: sign up, confirm the code, then change or cancel through the signed link
// (#manage=TOKEN: the fragment is never sent to a server). No library, no inline script.

const TEXT = {
  en: {
    title: "Sign up for service alerts", ui_language: "Language",
    intro: "Get a text, a call or an email when water, gas or heat is cut off at your address.",
    where: "Where you live", address: "Street address",
    point_hint: "Mark your home: tap the map, use your location, or type the coordinates.",
    map_label: "Map of the service area: tap where you live", locate: "Use my location",
    lon: "Longitude", lat: "Latitude", how: "How to reach you", alert_language: "Language of the alerts",
    contact_hint: "One mobile number or one email address. The code is sent there.",
    phone: "Mobile number", email: "Email address", channels: "Send alerts by",
    ch_sms: "Text message", ch_voice: "Phone call", ch_email: "Email",
    needs: "Anything we should know? (optional)", need_deaf: "Deaf or hard of hearing (no calls)",
    need_blind: "Blind or low vision (calls first)",
    need_medical: "Someone depends on medical equipment (the utility confirms it)",
    send_code: "Send me a code", code: "Code", confirm: "Confirm",
    sent_sms: "We sent a code by text message. It works for 15 minutes.",
    sent_email: "We sent a code by email. It works for 15 minutes.",
    done_title: "You are signed up",
    done_text: "Keep this link: it is the only way to change or cancel your sign-up.",
    stop_text: "You can also reply STOP to any text to stop texts.",
    manage_title: "Your sign-up", contact: "Contact", save: "Save changes", remove: "Cancel my sign-up",
    saved: "Saved.", removed: "Your sign-up is cancelled. Nothing more will be sent.",
    confirm_remove: "Cancel your sign-up? No more alerts will be sent.",
    back: "Current outages", sending: "Sending…",
    wrong_code: "Wrong code: {n} tries left.", code_expired: "The code has expired: start again.",
    too_many_tries: "Too many wrong codes: start again.",
    too_many_requests: "Too many sign-ups. Try again in {n} minutes.",
    invalid_link: "This link is not valid.", link_expired: "This link has expired: sign up again.",
    link_replaced: "A newer sign-up replaced this link: use the link it gave.",
    gone: "This sign-up was cancelled.", no_point: "Mark your home on the map or type its coordinates.",
    no_location: "Your location is not available: tap the map or type the coordinates.",
    failed: "Something went wrong. Try again.",
  },
  "zh-CN": {
    title: "订阅停水停气通知", ui_language: "语言",
    intro: "您的地址停水、停气或停暖时，我们会通过短信、电话或电子邮件通知您。",
    where: "您的住址", address: "街道地址",
    point_hint: "标出您的住处：点击地图、使用您的位置，或输入坐标。",
    map_label: "服务区域地图：点击您的住处", locate: "使用我的位置",
    lon: "经度", lat: "纬度", how: "联系方式", alert_language: "通知语言",
    contact_hint: "填写一个手机号码或一个电子邮件地址，验证码将发送到那里。",
    phone: "手机号码", email: "电子邮件地址", channels: "通知方式",
    ch_sms: "短信", ch_voice: "电话", ch_email: "电子邮件",
    needs: "需要我们了解的情况（可选）", need_deaf: "聋人或听力障碍（不打电话）",
    need_blind: "盲人或视力障碍（优先打电话）", need_medical: "家中有人依赖医疗设备（由公司确认）",
    send_code: "发送验证码", code: "验证码", confirm: "确认",
    sent_sms: "验证码已通过短信发送，15分钟内有效。", sent_email: "验证码已通过电子邮件发送，15分钟内有效。",
    done_title: "订阅成功", done_text: "请保存此链接：只有通过它才能修改或取消订阅。",
    stop_text: "您也可以回复“退订”停止接收短信。",
    manage_title: "您的订阅", contact: "联系方式", save: "保存修改", remove: "取消订阅",
    saved: "已保存。", removed: "订阅已取消，我们不会再发送通知。",
    confirm_remove: "确定取消订阅吗？之后不会再收到通知。",
    back: "当前停水停气信息", sending: "正在发送…",
    wrong_code: "验证码错误：还可以尝试{n}次。", code_expired: "验证码已过期，请重新开始。",
    too_many_tries: "错误次数过多，请重新开始。", too_many_requests: "订阅次数过多，请{n}分钟后再试。",
    invalid_link: "此链接无效。", link_expired: "此链接已过期，请重新订阅。", gone: "此订阅已取消。",
    link_replaced: "此链接已被更新的订阅取代，请使用新订阅给出的链接。",
    no_point: "请在地图上标出您的住处或输入坐标。", no_location: "无法获取您的位置：请点击地图或输入坐标。",
    failed: "出错了，请重试。",
  },
};

const $ = (id) => document.getElementById(id);
let lang = "en";

function t(key, n) {
  const text = (TEXT[lang] || TEXT.en)[key] || TEXT.en[key] || key;
  return n === undefined ? text : text.replace("{n}", String(n));
}

function chooseLanguage() {
  const saved = localStorage.getItem("signup.language");
  if (saved && TEXT[saved]) return saved;
  const wanted = navigator.languages || [navigator.language || "en"];
  return wanted.some((tag) => tag.toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
}

function applyLanguage(tag) {
  lang = TEXT[tag] ? tag : "en";
  document.documentElement.lang = lang;
  $("ui-language").value = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.title = t("title");
}

function say(text) {
  $("status").textContent = text;
  $("problem").hidden = true;
}

function problem(text) {
  $("status").textContent = "";
  $("problem").textContent = text;
  $("problem").hidden = false;
}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  return { status: resp.status, data, retryAfter: resp.headers.get("Retry-After") };
}

function explain(answer) {
  const error = (answer.data && answer.data.error) || {};
  const code = error.code || "";
  if (code === "wrong_code") {
    const left = /(\d+)/.exec(error.message || "");
    return t("wrong_code", left ? left[1] : "?");
  }
  if (code === "too_many_requests" || code === "rate_limited") {
    return t("too_many_requests", Math.max(1, Math.ceil(Number(answer.retryAfter || 60) / 60)));
  }
  if (["code_expired", "too_many_tries", "invalid_link", "link_expired", "link_replaced"].includes(code)) {
    return t(code);
  }
  if (code === "removed") return t("gone");
  // A rule of the sign-up (the server says which field, in English).
  return error.message ? `${t("failed")} (${error.message})` : t("failed");
}

function checked(name) {
  return [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((el) => el.value);
}

function setChecked(name, values) {
  for (const el of document.querySelectorAll(`input[name="${name}"]`)) el.checked = values.includes(el.value);
}

// --- the map: the service area's extent, a tap sets the point -------------------------------

const extent = (() => {
  const raw = ($("map").dataset.extent || "").split(",").map(Number);
  return raw.length === 4 && raw.every(Number.isFinite) ? raw : null;
})();

function drawGrid() {
  const grid = $("grid");
  for (let i = 1; i < 6; i++) {
    for (const [x1, y1, x2, y2] of [[i * 50, 0, i * 50, 200], [0, i * 33.3, 300, i * 33.3]]) {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
      line.setAttribute("x1", x1); line.setAttribute("y1", y1);
      line.setAttribute("x2", x2); line.setAttribute("y2", y2);
      grid.appendChild(line);
    }
  }
}

function placeMarker() {
  const lon = Number($("lon").value), lat = Number($("lat").value);
  if (!extent || !$("lon").value || !Number.isFinite(lon) || !Number.isFinite(lat)) return;
  const [w, s, e, n] = extent;
  $("marker").setAttribute("cx", ((lon - w) / (e - w)) * 300);
  $("marker").setAttribute("cy", ((n - lat) / (n - s)) * 200);
}

function onMapClick(event) {
  if (!extent) return;
  const box = $("map").getBoundingClientRect();
  const [w, s, e, n] = extent;
  const lon = w + ((event.clientX - box.left) / box.width) * (e - w);
  const lat = n - ((event.clientY - box.top) / box.height) * (n - s);
  $("lon").value = lon.toFixed(6);
  $("lat").value = lat.toFixed(6);
  placeMarker();
}

function locate() {
  if (!navigator.geolocation) return problem(t("no_location"));
  navigator.geolocation.getCurrentPosition(
    (pos) => {
      $("lon").value = pos.coords.longitude.toFixed(6);
      $("lat").value = pos.coords.latitude.toFixed(6);
      placeMarker();
    },
    () => problem(t("no_location")),
    { timeout: 10000 },
  );
}

// --- sign up, then the code --------------------------------------------------------------------

let enrolmentId = null;

async function signUp(event) {
  event.preventDefault();
  const lon = Number($("lon").value), lat = Number($("lat").value);
  if (!$("lon").value || !$("lat").value || !Number.isFinite(lon) || !Number.isFinite(lat)) {
    return problem(t("no_point"));
  }
  const body = {
    address: $("address").value, lon, lat, language: $("language").value,
    channels: checked("channel"), needs: checked("need"),
  };
  const phone = $("phone").value.trim(), email = $("email").value.trim();
  if (phone) body.sms = phone;
  if (email) body.email = email;
  say(t("sending"));
  const answer = await call("POST", "/public/api/enrolments", body);
  if (answer.status !== 202) return problem(explain(answer));
  enrolmentId = answer.data.enrolment_id;
  $("signup").hidden = true;
  $("code-step").hidden = false;
  $("code-sent").textContent = t(answer.data.sent_to === "email" ? "sent_email" : "sent_sms");
  say("");
  $("code").focus();
}

async function confirmCode(event) {
  event.preventDefault();
  const answer = await call("POST", `/public/api/enrolments/${encodeURIComponent(enrolmentId)}/confirm`, {
    code: $("code").value.trim(),
  });
  if (answer.status !== 200) {
    problem(explain(answer));
    if (answer.status === 410) {
      $("code-step").hidden = true;
      $("signup").hidden = false;
    }
    return;
  }
  $("code-step").hidden = true;
  $("done").hidden = false;
  const link = new URL(answer.data.manage_url, location.href).href;
  $("manage-link").href = link;
  $("manage-link").textContent = link;
  say("");
}

// --- the signed link: change or cancel ---------------------------------------------------------

function manageToken() {
  const match = /^#manage=([A-Za-z0-9_.-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

async function openManage(token) {
  $("signup").hidden = true;
  const answer = await call("GET", `/public/api/households/self/${token}`);
  if (answer.status !== 200) return problem(explain(answer));
  const h = answer.data;
  $("m-address").textContent = h.address;
  $("m-contact").textContent = h.contact;
  $("m-language").value = h.language in TEXT ? h.language : "en";
  setChecked("m-channel", h.channels);
  setChecked("m-need", h.needs);
  const email = h.contact.includes("@");
  for (const el of document.querySelectorAll('input[name="m-channel"]')) {
    el.disabled = email ? el.value !== "email" : el.value === "email";
  }
  $("manage").hidden = false;
}

async function saveManage(event) {
  event.preventDefault();
  const body = { language: $("m-language").value, channels: checked("m-channel"), needs: checked("m-need") };
  const answer = await call("PATCH", `/public/api/households/self/${manageToken()}`, body);
  if (answer.status !== 200) return problem(explain(answer));
  say(t("saved"));
}

async function removeManage() {
  if (!window.confirm(t("confirm_remove"))) return;
  const answer = await call("DELETE", `/public/api/households/self/${manageToken()}`);
  if (answer.status !== 204) return problem(explain(answer));
  $("manage").hidden = true;
  say(t("removed"));
}

function start() {
  applyLanguage(chooseLanguage());
  $("language").value = lang;
  $("ui-language").addEventListener("change", (e) => {
    localStorage.setItem("signup.language", e.target.value);
    applyLanguage(e.target.value);
    $("language").value = lang;
  });
  drawGrid();
  $("map").addEventListener("click", onMapClick);
  $("lon").addEventListener("input", placeMarker);
  $("lat").addEventListener("input", placeMarker);
  $("locate").addEventListener("click", locate);
  $("signup").addEventListener("submit", signUp);
  $("code-step").addEventListener("submit", confirmCode);
  $("manage").addEventListener("submit", saveManage);
  $("remove").addEventListener("click", removeManage);
  const token = manageToken();
  if (token) openManage(token);
}

start();
