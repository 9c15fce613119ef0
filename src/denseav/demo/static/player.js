// The denseav demo's heatmap player: runs as a gr.HTML component's js_on_load (`element`, `props`, `watch`
// are Gradio's). props.value is denseav.demo.payload.player_payload(...) or null. Every picture is drawn here
// from the audio element's clock, so playing, scrubbing and switching heads never asks the server again.
//
// Drawing follows denseav.render (the payload carries its colours, ranges, alpha and threshold):
//   v = the head's map at this step, normalised over the whole clip (quantised to 0..255 by the server);
//   opacity = alpha * clamp((v - threshold) / (1 - threshold), 0, 1); pixel = photo * (1 - opacity) + colour * opacity;
//   heads together: each pixel takes the head with the larger similarity there (winner-take-all).
// Patch centres sit where denseav.image.maps_to_original puts them: a displayed pixel x (of W) is at grid
// coordinate (x + 0.5) * (resized_width / W) / patch_size - 0.5, edges replicated; values in between bilinear.

// Re-read at every update: the template may be re-rendered when the value changes.
let root = element.querySelector(".dav-root");
const state = { data: null, photo: null, view: "together", step: -1, raf: 0, drawnKey: "" };

function decodeMaps(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

// Binary search: the step whose centre is nearest to t seconds (as Grounding.step_at).
function stepAt(times, t) {
  let lo = 0, hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(times[lo - 1] - t) <= Math.abs(times[lo] - t)) return lo - 1;
  return lo;
}

// For each displayed column (or row): the two grid cells and the weight of the second.
function axisTaps(displayed, resized, patch, cells) {
  const i0 = new Int32Array(displayed), i1 = new Int32Array(displayed), f = new Float32Array(displayed);
  for (let x = 0; x < displayed; x++) {
    const g = Math.min(Math.max((x + 0.5) * (resized / displayed) / patch - 0.5, 0), cells - 1);
    i0[x] = Math.floor(g);
    i1[x] = Math.min(i0[x] + 1, cells - 1);
    f[x] = g - i0[x];
  }
  return { i0, i1, f };
}

function loadPhoto(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      resolve({ width: c.width, height: c.height, rgba: ctx.getImageData(0, 0, c.width, c.height).data });
    };
    img.onerror = reject;
    img.src = url;
  });
}

// One panel: the photo with the shown heads' maps at `step` laid over it, into `out` at column offset `x0`.
function drawPanel(out, outWidth, x0, heads, step) {
  const d = state.data, p = state.photo;
  const [h, w] = d.grid;
  const plane = h * w, steps = d.steps;
  const cols = state.cols, rows = state.rows;
  const alpha = d.alpha, thr = d.threshold;
  const n = heads.length;
  const vals = new Float32Array(n), raws = new Float32Array(n);
  for (let y = 0; y < p.height; y++) {
    const r0 = rows.i0[y] * w, r1 = rows.i1[y] * w, fy = rows.f[y];
    for (let x = 0; x < p.width; x++) {
      const c0 = cols.i0[x], c1 = cols.i1[x], fx = cols.f[x];
      let best = -1, bestRaw = -Infinity;
      for (let j = 0; j < n; j++) {
        const k = heads[j];
        const base = (k * steps + step) * plane;
        const m = state.maps;
        const top = m[base + r0 + c0] * (1 - fx) + m[base + r0 + c1] * fx;
        const bottom = m[base + r1 + c0] * (1 - fx) + m[base + r1 + c1] * fx;
        const v = (top * (1 - fy) + bottom * fy) / 255;
        const range = d.heads[k].range;
        vals[j] = v;
        raws[j] = range[0] + v * (range[1] - range[0]);
        if (raws[j] > bestRaw) { bestRaw = raws[j]; best = j; }
      }
      const src = (y * p.width + x) * 4, dst = (y * outWidth + x0 + x) * 4;
      let r = p.rgba[src], g = p.rgba[src + 1], b = p.rgba[src + 2];
      if (best >= 0) {
        const a = alpha * Math.min(Math.max((vals[best] - thr) / (1 - thr), 0), 1);
        const colour = d.heads[heads[best]].color;
        r = r * (1 - a) + colour[0] * a;
        g = g * (1 - a) + colour[1] * a;
        b = b * (1 - a) + colour[2] * a;
      }
      out[dst] = r; out[dst + 1] = g; out[dst + 2] = b; out[dst + 3] = 255;
    }
  }
}

function panels() {
  const all = state.data.heads.map((_, k) => k);
  if (state.view === "together") return [all];
  if (state.view === "apart") return all.map((k) => [k]);
  return [[Number(state.view)]];
}

function drawLabel(ctx, x, y, names, colours) {
  ctx.font = "600 13px system-ui, sans-serif";
  const width = Math.max(...names.map((s) => ctx.measureText(s).width)) + 30;
  ctx.fillStyle = "rgba(0,0,0,0.55)";
  ctx.fillRect(x, y, width, 8 + 18 * names.length);
  names.forEach((name, i) => {
    ctx.fillStyle = `rgb(${colours[i].join(",")})`;
    ctx.fillRect(x + 6, y + 8 + 18 * i, 12, 12);
    ctx.fillStyle = "#fff";
    ctx.fillText(name, x + 24, y + 18 + 18 * i);
  });
}

const GAP = 8;

function drawFrame(force) {
  const d = state.data;
  if (!d || !state.photo) return;
  const audio = root.querySelector(".dav-audio");
  const t = audio.currentTime || 0;
  const step = stepAt(d.times, t);
  const key = `${step}|${state.view}`;
  if (force || key !== state.drawnKey) {
    const groups = panels();
    const p = state.photo;
    const canvas = root.querySelector(".dav-canvas");
    const width = groups.length * p.width + (groups.length - 1) * GAP;
    if (canvas.width !== width || canvas.height !== p.height) {
      canvas.width = width;
      canvas.height = p.height;
    }
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(width, p.height);
    groups.forEach((heads, i) => drawPanel(image.data, width, i * (p.width + GAP), heads, step));
    ctx.putImageData(image, 0, 0);
    groups.forEach((heads, i) =>
      drawLabel(ctx, i * (p.width + GAP) + 8, 8, heads.map((k) => d.heads[k].name), heads.map((k) => d.heads[k].color)));
    canvas.dataset.step = String(step);
    canvas.dataset.view = state.view;
    state.drawnKey = key;
  }
  drawStrip(t);
  root.querySelector(".dav-time").textContent = `${t.toFixed(2)} / ${d.duration.toFixed(2)} s · step ${step + 1} of ${d.steps}`;
  const scrub = root.querySelector(".dav-scrub");
  if (document.activeElement !== scrub) scrub.value = String(Math.round((1000 * t) / Math.max(d.duration, 1e-6)));
}

// The strip: the waveform, then each head's peak similarity over time, and a cursor at the current time.
function stripLayout(canvas) {
  const left = 56, right = 12, top = 6, waveH = 40, gap = 8, header = 20, bottom = 22;
  const plotW = canvas.width - left - right;
  const curveTop = top + waveH + gap + header;
  return { left, plotW, top, waveH, curveTop, curveH: canvas.height - curveTop - bottom };
}

function drawStrip(t) {
  const d = state.data;
  const canvas = root.querySelector(".dav-strip");
  const width = Math.max(320, Math.min(root.clientWidth || 720, 1200));
  if (canvas.width !== width) { canvas.width = width; canvas.height = 180; }
  const ctx = canvas.getContext("2d");
  const L = stripLayout(canvas);
  const xOf = (s) => L.left + (L.plotW * s) / Math.max(d.duration, 1e-6);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#e2e2e2";
  ctx.strokeRect(L.left, L.top, L.plotW, L.waveH);
  ctx.strokeRect(L.left, L.curveTop, L.plotW, L.curveH);
  // The waveform the model heard (min/max per column).
  ctx.strokeStyle = "#9a9a9a";
  const env = d.envelope, mid = L.top + L.waveH / 2, half = L.waveH / 2 - 1;
  env.forEach(([lo, hi], i) => {
    const x = L.left + ((i + 0.5) * L.plotW) / env.length;
    ctx.beginPath();
    ctx.moveTo(x, mid - hi * half);
    ctx.lineTo(x, Math.max(mid - lo * half, mid - hi * half + 1));
    ctx.stroke();
  });
  // Each head's peak similarity per step, on one shared axis (as denseav.render.time_strip).
  const values = d.heads.flatMap((hd) => hd.strip);
  const lo = Math.min(0, ...values), hi = Math.max(lo + 1e-6, ...values);
  const yOf = (v) => L.curveTop + (L.curveH - 1) * (1 - (v - lo) / (hi - lo));
  d.heads.forEach((hd) => {
    ctx.strokeStyle = `rgb(${hd.color.join(",")})`;
    ctx.lineWidth = 2;
    ctx.beginPath();
    hd.strip.forEach((v, i) => (i ? ctx.lineTo(xOf(d.times[i]), yOf(v)) : ctx.moveTo(xOf(d.times[i]), yOf(v))));
    ctx.stroke();
  });
  ctx.lineWidth = 1;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#333";
  ctx.textAlign = "right";
  ctx.fillText("sound", L.left - 6, mid + 4);
  ctx.fillText(hi.toPrecision(3), L.left - 6, L.curveTop + 10);
  ctx.fillText(lo.toPrecision(3), L.left - 6, L.curveTop + L.curveH);
  // Header row: what the curves are, and which colour is which head.
  const headerY = L.curveTop - 6;
  let x = L.left + L.plotW;
  for (const hd of [...d.heads].reverse()) {
    ctx.fillStyle = "#333";
    ctx.fillText(hd.name, x, headerY);
    x -= ctx.measureText(hd.name).width + 6;
    ctx.fillStyle = `rgb(${hd.color.join(",")})`;
    ctx.fillRect(x - 10, headerY - 9, 10, 10);
    x -= 22;
  }
  ctx.textAlign = "left";
  ctx.fillStyle = "#777";
  ctx.fillText("peak similarity per head (max over the image)", L.left, headerY);
  ctx.textAlign = "center";
  ctx.fillStyle = "#333";
  const tick = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60].find((s) => d.duration / s <= 10) || 60;
  for (let s = 0; s <= d.duration + 1e-9; s += tick) {
    ctx.fillText(`${+s.toFixed(2)}`, xOf(s), L.curveTop + L.curveH + 14);
  }
  ctx.textAlign = "right";
  ctx.fillStyle = "#777";
  ctx.fillText("time (s)", L.left - 6, L.curveTop + L.curveH + 14);
  ctx.textAlign = "left";
  const cursor = xOf(t);
  ctx.strokeStyle = "#111";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(cursor, L.top);
  ctx.lineTo(cursor, L.curveTop + L.curveH);
  ctx.stroke();
  ctx.lineWidth = 1;
}

function loop() {
  drawFrame(false);
  const audio = root.querySelector(".dav-audio");
  state.raf = audio.paused ? 0 : requestAnimationFrame(loop);
}

function startLoop() {
  if (!state.raf) state.raf = requestAnimationFrame(loop);
}

function buildViews() {
  const box = root.querySelector(".dav-views");
  box.replaceChildren();
  const options = [["together", "Heads together"]];
  if (state.data.heads.length > 1) {
    options.push(["apart", "Side by side"]);
    state.data.heads.forEach((hd, k) => options.push([String(k), `${hd.name} only`]));
  }
  if (!options.some(([v]) => v === state.view)) state.view = "together";
  for (const [value, label] of options) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "dav-view" + (value === state.view ? " dav-on" : "");
    button.dataset.view = value;
    button.textContent = label;
    button.addEventListener("click", () => {
      state.view = value;
      box.querySelectorAll(".dav-view").forEach((b) => b.classList.toggle("dav-on", b.dataset.view === value));
      drawFrame(true);
    });
    box.appendChild(button);
  }
}

function summary() {
  const d = state.data;
  const per = d.heads
    .map((hd) => `<span class="dav-chip" style="--c: rgb(${hd.color.join(",")})">${hd.name} ${hd.score.toFixed(3)}</span>`)
    .join(" ");
  return `<b>Score ${d.score.toFixed(3)}</b> ${per} <span class="dav-dim">${d.duration.toFixed(2)} s of sound in ${d.steps} steps</span>`;
}

async function show() {
  root = element.querySelector(".dav-root");
  if (!root.dataset.wired) wire();
  const d = props.value;
  const player = root.querySelector(".dav-player");
  const empty = root.querySelector(".dav-empty");
  const audio = root.querySelector(".dav-audio");
  audio.pause();
  if (!d || typeof d !== "object" || !d.maps) {
    state.data = null;
    player.hidden = true;
    empty.hidden = false;
    return;
  }
  state.data = d;
  state.maps = decodeMaps(d.maps);
  state.photo = await loadPhoto(d.image);
  state.cols = axisTaps(state.photo.width, d.resized_size[1], d.patch_size, d.grid[1]);
  state.rows = axisTaps(state.photo.height, d.resized_size[0], d.patch_size, d.grid[0]);
  root.querySelector(".dav-summary").innerHTML = summary();
  buildViews();
  audio.src = d.audio;
  audio.currentTime = 0;
  empty.hidden = true;
  player.hidden = false;
  drawFrame(true);
  root.dataset.ready = "1";
}

function wire() {
  root.dataset.wired = "1";
  const audio = root.querySelector(".dav-audio");
  const play = root.querySelector(".dav-play");
  const scrub = root.querySelector(".dav-scrub");
  const strip = root.querySelector(".dav-strip");
  play.addEventListener("click", () => (audio.paused ? audio.play() : audio.pause()));
  audio.addEventListener("play", () => { play.innerHTML = "&#10074;&#10074; Pause"; startLoop(); });
  audio.addEventListener("pause", () => { play.innerHTML = "&#9654; Play"; drawFrame(false); });
  audio.addEventListener("ended", () => { play.innerHTML = "&#9654; Play"; drawFrame(false); });
  for (const ev of ["seeked", "timeupdate"]) audio.addEventListener(ev, () => drawFrame(false));
  scrub.addEventListener("input", () => {
    if (!state.data) return;
    audio.currentTime = (Number(scrub.value) / 1000) * state.data.duration;
    drawFrame(false);
  });
  const seekFromStrip = (e) => {
    if (!state.data) return;
    const rect = strip.getBoundingClientRect();
    const L = stripLayout(strip);
    const x = ((e.clientX - rect.left) * strip.width) / rect.width;
    audio.currentTime = Math.min(Math.max((x - L.left) / L.plotW, 0), 1) * state.data.duration;
    drawFrame(false);
  };
  strip.addEventListener("pointerdown", (e) => { strip.setPointerCapture(e.pointerId); seekFromStrip(e); });
  strip.addEventListener("pointermove", (e) => { if (e.buttons) seekFromStrip(e); });
}

show();
watch("value", show);
