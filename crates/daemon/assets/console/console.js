// The Wild Rydes console: the fleet on a plain projection, open alarms,
// pipelines, rejects, and one unicorn's minutes. Data from the server is
// only ever written as text (textContent, attributes), never as markup.
// window.wildrydesConsole holds what the browser test reads: when the
// first full render finished, and the main-thread cost of each update
// (`updates`: its script; `rendered`: until the frame after it is drawn).
'use strict';

(() => {
  const perf = { firstRenderMs: null, updates: [], rendered: [], longTasks: [], unicorns: 0, events: 0 };
  window.wildrydesConsole = perf;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        perf.longTasks.push({ start: Math.round(e.startTime), ms: Math.round(e.duration) });
      }
    }).observe({ type: 'longtask', buffered: true });
  } catch (_) { /* not every browser reports long tasks */ }

  const SVG = 'http://www.w3.org/2000/svg';
  const W = 1000;
  const H = 600;
  const $ = (id) => document.getElementById(id);
  const dots = $('dots');
  const labels = $('labels');
  const grid = $('grid');
  const fleet = new Map(); // name -> { u, dot, label }
  let frame = null; // { lat0, lat1, lon0, lon1, scale, x0, y0 }
  let selected = null;
  const openAlarms = new Set();

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    return el;
  }

  function text(tag, content, cls) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (cls) el.className = cls;
    return el;
  }

  // ---- the map -----------------------------------------------------------

  // Fits a frame around every position, 10 % margin, longitude scaled by
  // the cosine of the middle latitude so that shapes are not stretched.
  function fit() {
    let lat0 = Infinity, lat1 = -Infinity, lon0 = Infinity, lon1 = -Infinity;
    for (const { u } of fleet.values()) {
      if (u.lat < lat0) lat0 = u.lat;
      if (u.lat > lat1) lat1 = u.lat;
      if (u.lon < lon0) lon0 = u.lon;
      if (u.lon > lon1) lon1 = u.lon;
    }
    if (!isFinite(lat0)) return false;
    const padLat = Math.max((lat1 - lat0) * 0.1, 0.002);
    const padLon = Math.max((lon1 - lon0) * 0.1, 0.002);
    lat0 -= padLat; lat1 += padLat; lon0 -= padLon; lon1 += padLon;
    const k = Math.cos(((lat0 + lat1) / 2) * Math.PI / 180);
    const scale = Math.min(W / ((lon1 - lon0) * k), H / (lat1 - lat0));
    const x0 = (W - (lon1 - lon0) * k * scale) / 2;
    const y0 = (H - (lat1 - lat0) * scale) / 2;
    frame = { lat0, lat1, lon0, lon1, k, scale, x0, y0 };
    drawGrid();
    return true;
  }

  function inside(u) {
    return frame && u.lat >= frame.lat0 && u.lat <= frame.lat1 && u.lon >= frame.lon0 && u.lon <= frame.lon1;
  }

  function x(lon) { return frame.x0 + (lon - frame.lon0) * frame.k * frame.scale; }
  function y(lat) { return frame.y0 + (frame.lat1 - lat) * frame.scale; }

  function niceStep(span) {
    const raw = span / 6;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function drawGrid() {
    grid.replaceChildren();
    const stepLat = niceStep(frame.lat1 - frame.lat0);
    const stepLon = niceStep(frame.lon1 - frame.lon0);
    const digits = (s) => Math.max(0, -Math.floor(Math.log10(s)));
    for (let lat = Math.ceil(frame.lat0 / stepLat) * stepLat; lat <= frame.lat1; lat += stepLat) {
      grid.append(svg('line', { x1: 0, x2: W, y1: y(lat), y2: y(lat) }));
      const t = svg('text', { x: 4, y: y(lat) - 3 });
      t.textContent = lat.toFixed(digits(stepLat)) + '°';
      grid.append(t);
    }
    for (let lon = Math.ceil(frame.lon0 / stepLon) * stepLon; lon <= frame.lon1; lon += stepLon) {
      grid.append(svg('line', { x1: x(lon), x2: x(lon), y1: 0, y2: H }));
      const t = svg('text', { x: x(lon) + 3, y: H - 4 });
      t.textContent = lon.toFixed(digits(stepLon)) + '°';
      grid.append(t);
    }
  }

  const stateClass = (s) => (s === 'ALARM' ? 'alarm' : s === 'SILENT' ? 'silent' : 'ok');

  function place(entry) {
    const { u, dot } = entry;
    dot.setAttribute('cx', x(u.lon).toFixed(1));
    dot.setAttribute('cy', y(u.lat).toFixed(1));
    const cls = stateClass(u.state) + (u.name === selected ? ' selected' : '');
    if (dot.getAttribute('class') !== cls) dot.setAttribute('class', cls);
    // Names on the map: every one for a small fleet, the alarms always.
    const labelled = fleet.size <= 60 || u.state === 'ALARM';
    if (labelled) {
      if (!entry.label) {
        entry.label = svg('text', {});
        entry.label.textContent = u.name;
        labels.append(entry.label);
      }
      entry.label.setAttribute('x', (x(u.lon) + 6).toFixed(1));
      entry.label.setAttribute('y', (y(u.lat) + 4).toFixed(1));
      entry.label.setAttribute('class', stateClass(u.state));
    } else if (entry.label) {
      entry.label.remove();
      entry.label = null;
    }
  }

  function upsert(u, added) {
    let entry = fleet.get(u.name);
    if (!entry) {
      const dot = svg('circle', { r: 4, 'data-name': u.name });
      const title = svg('title', {});
      title.textContent = u.name;
      dot.append(title);
      entry = { u, dot, label: null };
      fleet.set(u.name, entry);
      added.append(dot);
      return true;
    }
    entry.u = u;
    return false;
  }

  function applyFleet(list) {
    const added = document.createDocumentFragment();
    let refit = !frame;
    const wasSmall = fleet.size <= 60;
    for (const u of list) {
      upsert(u, added);
      if (!inside(u)) refit = true;
    }
    if (refit && fit()) {
      for (const entry of fleet.values()) place(entry);
    } else if (wasSmall !== (fleet.size <= 60)) {
      for (const entry of fleet.values()) place(entry);
    } else {
      for (const u of list) place(fleet.get(u.name));
    }
    const r = fleet.size > 1000 ? 2.5 : 4;
    if (dots.dataset.r !== String(r)) {
      dots.dataset.r = String(r);
      for (const { dot } of fleet.values()) dot.setAttribute('r', r);
    } else {
      for (const u of list) fleet.get(u.name).dot.setAttribute('r', r);
    }
    dots.append(added);
    let ok = 0, alarm = 0, silent = 0;
    for (const { u } of fleet.values()) {
      if (u.state === 'ALARM') alarm++; else if (u.state === 'SILENT') silent++; else ok++;
    }
    $('count-all').textContent = fleet.size;
    $('count-ok').textContent = ok;
    $('count-alarm').textContent = alarm;
    $('count-silent').textContent = silent;
    perf.unicorns = fleet.size;
  }

  // ---- side panels ---------------------------------------------------------

  const when = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

  function applyAlarms(alarms) {
    openAlarms.clear();
    const items = alarms.map((a) => {
      openAlarms.add(a.name);
      const li = document.createElement('li');
      li.dataset.name = a.name;
      li.append(text('span', a.name, 'name'), ' ',
        text('span', 'magic ' + (a.magicPoints ?? '?'), ''), ' ',
        text('span', 'since ' + when(a.since), 'when'));
      return li;
    });
    $('alarms').replaceChildren(...items);
    $('alarms-count').textContent = alarms.length;
  }

  function applyPipelines(pipelines) {
    const rows = pipelines.map((p) => {
      const tr = document.createElement('tr');
      if (!p.up) {
        tr.append(text('td', p.source), text('td', 'down: ' + (p.error || ''), 'down'));
        tr.lastChild.colSpan = 5;
        return tr;
      }
      tr.append(
        text('td', p.pipeline),
        text('td', (p.lagMs / 1000).toFixed(1) + ' s'),
        text('td', p.recordsPerSec.toFixed(0)),
        text('td', p.rejectedPerSec.toFixed(1)),
        text('td', p.retriesPerSec.toFixed(1)),
        text('td', String(p.leases)),
      );
      return tr;
    });
    $('pipelines').tBodies[0].replaceChildren(...rows);
    $('pipelines-none').hidden = pipelines.length > 0;
  }

  function applyRejects(rejects) {
    const items = rejects.map((r) => {
      const li = document.createElement('li');
      li.append(text('span', r.pipeline + ': ', ''), text('span', r.reason, ''), ' ',
        text('span', '(' + r.partitionKey + ', ' + r.rejectedAt + ')', 'when'));
      return li;
    });
    $('rejects').replaceChildren(...items);
    $('rejects-count').textContent = rejects.length;
  }

  function apply(update) {
    if (update.alarms) applyAlarms(update.alarms);
    if (update.fleet && update.fleet.length) applyFleet(update.fleet);
    if (update.pipelines) applyPipelines(update.pipelines);
    if (update.rejects) applyRejects(update.rejects);
  }

  // ---- one unicorn -----------------------------------------------------------

  function band(svgEl, minutes, pick, cls, threshold) {
    svgEl.replaceChildren();
    if (!minutes.length) return;
    const t0 = minutes[0].t, t1 = minutes[minutes.length - 1].t || t0 + 1;
    let lo = Infinity, hi = -Infinity;
    for (const m of minutes) { const [a, b] = pick(m); lo = Math.min(lo, a); hi = Math.max(hi, b); }
    if (threshold !== undefined) { lo = Math.min(lo, threshold); hi = Math.max(hi, threshold); }
    if (hi === lo) hi = lo + 1;
    const px = (t) => 30 + ((t - t0) / Math.max(t1 - t0, 1)) * 560;
    const py = (v) => 150 - ((v - lo) / (hi - lo)) * 135;
    const top = minutes.map((m) => px(m.t).toFixed(1) + ',' + py(pick(m)[1]).toFixed(1));
    const bottom = minutes.slice().reverse().map((m) => px(m.t).toFixed(1) + ',' + py(pick(m)[0]).toFixed(1));
    svgEl.append(svg('polygon', { points: top.concat(bottom).join(' '), class: 'band ' + cls }));
    if (threshold !== undefined) {
      svgEl.append(svg('line', { x1: 30, x2: 590, y1: py(threshold), y2: py(threshold), class: 'threshold' }));
    }
    for (const v of [lo, hi]) {
      const t = svg('text', { x: 2, y: py(v) + 3, class: 'axis' });
      t.textContent = String(v);
      svgEl.append(t);
    }
  }

  function bars(svgEl, minutes) {
    svgEl.replaceChildren();
    if (!minutes.length) return;
    const hi = Math.max(1, ...minutes.map((m) => m.distance));
    const w = 560 / minutes.length;
    minutes.forEach((m, i) => {
      const h = (m.distance / hi) * 135;
      svgEl.append(svg('rect', { x: (30 + i * w).toFixed(1), y: (150 - h).toFixed(1), width: Math.max(w - 1, 1).toFixed(1), height: h.toFixed(1), class: 'bar' }));
    });
    const t = svg('text', { x: 2, y: 18, class: 'axis' });
    t.textContent = String(hi);
    svgEl.append(t);
  }

  async function show(name) {
    selected = name;
    for (const entry of fleet.values()) place(entry);
    $('unicorn').hidden = false;
    $('unicorn-title').textContent = name;
    $('unicorn-status').textContent = 'loading…';
    try {
      const res = await fetch('/api/unicorn?name=' + encodeURIComponent(name) + '&minutes=120');
      if (!res.ok) throw new Error((await res.text()).trim());
      const data = await res.json();
      if (selected !== name) return;
      const u = fleet.get(name);
      $('unicorn-status').textContent = (u ? u.u.state + ', last reading ' + when(u.u.time) + '; ' : '')
        + data.minutes.length + ' minutes in UnicornSensorData';
      band($('chart-magic'), data.minutes, (m) => m.magic, 'magic', 50);
      band($('chart-health'), data.minutes, (m) => m.health, 'health');
      bars($('chart-distance'), data.minutes);
      const rows = data.transitions.map((t) => {
        const tr = document.createElement('tr');
        tr.append(text('td', t.state), text('td', String(t.statusTime)),
          text('td', String(t.magicPoints ?? '')), text('td', t.recordedAt || ''));
        return tr;
      });
      $('transitions').tBodies[0].replaceChildren(...rows);
    } catch (e) {
      $('unicorn-status').textContent = 'cannot load ' + name + ': ' + e.message;
    }
  }

  dots.addEventListener('click', (e) => {
    const name = e.target.getAttribute && e.target.getAttribute('data-name');
    if (name) show(name);
  });
  $('alarms').addEventListener('click', (e) => {
    const li = e.target.closest('li');
    if (li && li.dataset.name) show(li.dataset.name);
  });
  $('find').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('find-name').value.trim();
    if (name) show(name);
  });

  // ---- the event stream --------------------------------------------------------

  function handle(e) {
    const started = performance.now();
    apply(JSON.parse(e.data));
    const cost = performance.now() - started;
    perf.events++;
    if (perf.firstRenderMs === null) {
      perf.firstRenderMs = Math.round(performance.now());
      perf.firstRenderCostMs = Math.round(cost);
    } else {
      perf.updates.push(Math.round(cost * 10) / 10);
      if (perf.updates.length > 1000) perf.updates.shift();
      // Style, layout and paint follow the script: timed to the task
      // after the next frame.
      requestAnimationFrame(() => setTimeout(() => {
        perf.rendered.push(Math.round((performance.now() - started) * 10) / 10);
        if (perf.rendered.length > 1000) perf.rendered.shift();
      }, 0));
    }
  }

  const source = new EventSource('/api/events');
  source.addEventListener('snapshot', handle);
  source.addEventListener('update', handle);
  source.addEventListener('open', () => { $('connection').textContent = 'live'; $('connection').className = 'up'; });
  source.addEventListener('error', () => { $('connection').textContent = 'reconnecting…'; $('connection').className = 'down'; });
})();
