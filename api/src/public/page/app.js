// The public page: plain JavaScript, no build step. It talks only to the public GraphQL API
// (/public/graphql, /public/graphql/ws). The search is kept in the address (?pref=…&city=…),
// so a reload or a shared link shows the same results. Text from the server is always set as
// textContent, never as HTML.
"use strict";

const API = "/public/graphql";
const PAGE_SIZE = 20;

const SITE_FIELDS = `code name kindLabel address postalCode phone
  municipality { name } prefecture { name }
  products { code name }
  availability { status symbol label remaining updatedAt }
  booking { phone url notes }`;

const SEARCH = `query Search($filter: SiteSearchInput!, $page: Int!, $pageSize: Int!) {
  sites(filter: $filter, page: $page, pageSize: $pageSize) {
    totalCount page pageSize hasNextPage
    items { ${SITE_FIELDS} }
  }
}`;

const $ = (id) => document.getElementById(id);

class ApiError extends Error {}

async function gql(query, variables) {
  let resp;
  try {
    resp = await fetch(API, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ApiError("通信できませんでした。接続を確認して、もう一度お試しください。");
  }
  if (resp.status === 429) {
    const wait = resp.headers.get("retry-after") || "数";
    throw new ApiError(`アクセスが集中しています。${wait}秒ほど待ってから、もう一度お試しください。`);
  }
  const body = await resp.json().catch(() => ({}));
  if (body.errors && body.errors.length) {
    throw new ApiError("検索できませんでした：" + body.errors[0].message);
  }
  if (!resp.ok || !body.data) {
    throw new ApiError("検索できませんでした。しばらくしてから、もう一度お試しください。");
  }
  return body.data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

function formatTime(iso) {
  if (!iso) return "";
  try {
    return new Date(iso).toLocaleString("ja-JP", {
      timeZone: "Asia/Tokyo", year: "numeric", month: "long", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  } catch (e) {
    return iso;
  }
}

function telHref(phone) {
  return "tel:" + phone.replace(/[^0-9+]/g, "");
}

function safeUrl(url) {
  return /^https?:\/\//i.test(url) ? url : null;
}

// ---- the form and the address bar -------------------------------------------------------

function readForm() {
  return {
    pref: $("prefecture").value,
    city: $("municipality").value,
    postal: $("postal").value.trim(),
    q: $("text").value.trim(),
    product: $("product").value,
    available: $("available").checked,
    page: 1,
  };
}

function readAddress() {
  const p = new URLSearchParams(location.search);
  return {
    pref: p.get("pref") || "",
    city: p.get("city") || "",
    postal: p.get("postal") || "",
    q: p.get("q") || "",
    product: p.get("product") || "",
    available: p.get("available") === "1",
    page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1),
  };
}

function writeAddress(s) {
  const p = new URLSearchParams();
  for (const k of ["pref", "city", "postal", "q", "product"]) if (s[k]) p.set(k, s[k]);
  if (s.available) p.set("available", "1");
  if (s.page > 1) p.set("page", String(s.page));
  const qs = p.toString();
  history.replaceState(null, "", qs ? "?" + qs : location.pathname);
}

function hasArea(s) {
  return Boolean(s.pref || s.city || s.postal || s.q);
}

async function loadMunicipalities(pref) {
  const select = $("municipality");
  select.replaceChildren(option("", "（すべての市区町村）"));
  select.disabled = true;
  if (!pref) return;
  const data = await gql(`query M($p: PrefectureCode!) { municipalities(prefecture: $p) { code name } }`, { p: pref });
  for (const m of data.municipalities) select.append(option(m.code, m.name));
  select.disabled = false;
}

// ---- results -----------------------------------------------------------------------------

function statusBadge(a) {
  const key = a.status || "UNKNOWN";
  return el("p", { class: `status status-${key}` },
    el("span", { class: "symbol", "aria-hidden": "true", text: a.symbol }),
    el("span", { class: "label", text: a.label }));
}

function siteItem(s) {
  const id = `details-${s.code}`;
  const a = s.availability;
  const b = s.booking || {};
  const toggle = el("button", { type: "button", class: "toggle", "aria-expanded": "false", "aria-controls": id },
    "詳細を見る");
  const rows = [];
  const row = (term, value) => { if (value) rows.push(el("dt", { text: term }), el("dd", {}, value)); };
  const url = b.url && safeUrl(b.url);
  row("予約方法", url || b.phone ? null : "施設にお問い合わせください");
  row("予約電話", b.phone ? el("a", { href: telHref(b.phone), text: b.phone }) : null);
  row("予約ページ", url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank", text: url }) : null);
  row("残り枠", a.remaining !== null && a.remaining !== undefined ? `${a.remaining} 人分` : null);
  row("備考", b.notes || null);
  row("施設の種類", s.kindLabel);
  row("施設コード", s.code);
  const details = el("div", { class: "details", id, hidden: true }, el("dl", {}, ...rows));
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    toggle.setAttribute("aria-expanded", String(!open));
    toggle.textContent = open ? "詳細を見る" : "詳細を閉じる";
    details.hidden = open;
  });
  const products = s.products.length ? s.products.map((p) => p.name).join("、") : "登録なし";
  return el("li", { class: "site", "data-code": s.code, "data-status": a.status || "UNKNOWN" },
    statusBadge(a),
    el("h3", { class: "name", text: s.name }),
    el("p", { class: "address", text: `〒${s.postalCode} ${s.address}` }),
    el("p", { class: "phone" }, "電話：", el("a", { href: telHref(s.phone), text: s.phone })),
    el("p", { class: "products", text: `ワクチン：${products}` }),
    el("p", { class: "meta updated", text: a.updatedAt ? `更新：${formatTime(a.updatedAt)}` : "受付状況は未登録です" }),
    toggle,
    details);
}

let current = null;

async function search(s, { focus } = { focus: false }) {
  const error = $("form-error");
  error.hidden = true;
  if (!hasArea(s)) {
    error.textContent = "都道府県・市区町村を選ぶか、郵便番号か施設名を入力してください。";
    error.hidden = false;
    $("prefecture").focus();
    return;
  }
  current = s;
  writeAddress(s);
  const filter = { availableOnly: s.available };
  if (s.city) filter.municipality = s.city;
  else if (s.pref) filter.prefecture = s.pref;
  if (s.postal) filter.postalCode = s.postal;
  if (s.q) filter.text = s.q;
  if (s.product) filter.product = s.product;
  $("summary").textContent = "検索しています…";
  $("submit").disabled = true;
  try {
    const data = await gql(SEARCH, { filter, page: s.page, pageSize: PAGE_SIZE });
    render(data.sites);
    watch(s.city);
    if (focus) $("results").focus();
  } catch (e) {
    $("summary").textContent = e instanceof ApiError ? e.message : "検索できませんでした。";
    $("list").replaceChildren();
    $("pager").hidden = true;
  } finally {
    $("submit").disabled = false;
  }
}

function render(page) {
  const list = $("list");
  list.replaceChildren(...page.items.map(siteItem));
  const from = (page.page - 1) * page.pageSize + 1;
  const to = from + page.items.length - 1;
  $("summary").textContent = page.totalCount === 0
    ? "条件に合う接種会場は見つかりませんでした。"
    : `${page.totalCount}件見つかりました（${from}〜${to}件目を表示）。`;
  const pager = $("pager");
  pager.hidden = page.totalCount <= page.pageSize;
  $("prev").disabled = page.page <= 1;
  $("next").disabled = !page.hasNextPage;
  $("page-info").textContent = `${page.page} / ${Math.max(1, Math.ceil(page.totalCount / page.pageSize))} ページ`;
}

// ---- live updates: a changed status replaces its card in place ---------------------------

let socket = null;

function watch(city) {
  if (socket) { socket.close(); socket = null; }
  if (!city || !("WebSocket" in window)) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/public/graphql/ws`,
    "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init" }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: {
        query: `subscription W($m: MunicipalityCode!) { availabilityChanged(municipality: $m) { ${SITE_FIELDS} } }`,
        variables: { m: city },
      } }));
    } else if (msg.type === "next" && msg.payload && msg.payload.data) {
      const s = msg.payload.data.availabilityChanged;
      const old = document.querySelector(`li.site[data-code="${CSS.escape(s.code)}"]`);
      if (old) {
        old.replaceWith(siteItem(s));
        $("summary").textContent = `${s.name}の受付状況が「${s.availability.label}」に変わりました。`;
      }
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    }
  };
  socket = ws;
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  try {
    const data = await gql(`{ prefectures { code name } products { code name }
      availabilityLegend { symbol label description } }`, {});
    for (const p of data.prefectures) $("prefecture").append(option(p.code, p.name));
    for (const p of data.products) $("product").append(option(p.code, p.name));
    const legend = $("legend");
    for (const l of data.availabilityLegend) {
      legend.append(el("dt", { text: `${l.symbol} ${l.label}` }), el("dd", { text: l.description }));
    }
    legend.append(el("dt", { text: "－ 情報なし" }), el("dd", { text: "受付状況がまだ登録されていません。" }));
  } catch (e) {
    $("summary").textContent = e instanceof ApiError ? e.message : "読み込めませんでした。";
    return;
  }

  $("prefecture").addEventListener("change", async () => {
    try { await loadMunicipalities($("prefecture").value); } catch (e) { $("summary").textContent = e.message; }
  });
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    search(readForm(), { focus: true });
  });
  $("prev").addEventListener("click", () => current && search({ ...current, page: current.page - 1 }, { focus: true }));
  $("next").addEventListener("click", () => current && search({ ...current, page: current.page + 1 }, { focus: true }));

  const s = readAddress();
  $("prefecture").value = s.pref;
  if (s.pref) {
    try { await loadMunicipalities(s.pref); } catch (e) { /* shown on search */ }
    $("municipality").value = s.city;
  }
  $("postal").value = s.postal;
  $("text").value = s.q;
  $("product").value = s.product;
  $("available").checked = s.available;
  document.body.dataset.ready = "true";
  if (hasArea(s)) await search(s);
}

document.addEventListener("DOMContentLoaded", start);
