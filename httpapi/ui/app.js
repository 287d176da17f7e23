// Batch dashboard: a small single page over the Batch API it is mounted
// beside. Every API URL is relative to the page (../jobs from .../ui/), so
// the page follows wherever the API is mounted. The API key lives in this
// tab's sessionStorage and travels as the Authorization header.
'use strict';

const API = new URL('../', location.href);
const KEY = 'batch.apiKey';
const FINAL = new Set(['completed', 'failed', 'cancelled']);
const MAX_STREAMS = 4; // browsers allow about six connections per server

let routeGen = 0;          // bumps on every navigation; stale renders stop
let controllers = [];      // streams of the current view, aborted on navigation
let focusNext = '';        // an element to focus after the next render instead of the heading

// ---------- small helpers

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = v;
    else if (k === 'style') n.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

const $ = (sel, root = document) => root.querySelector(sel);

function flash(msg, kind) {
  const f = $('#flash');
  f.className = kind === 'info' ? 'info' : '';
  f.textContent = msg || '';
}

function fmtTime(s, zone) {
  if (!s) return '–';
  const d = new Date(s);
  if (isNaN(d)) return s;
  // Without a zone: the viewer's clock. With one (a schedule's): that
  // zone's wall clock, named.
  const opts = zone
    ? { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit', timeZone: zone, timeZoneName: 'short' }
    : { dateStyle: 'medium', timeStyle: 'medium' };
  try {
    return new Intl.DateTimeFormat(undefined, opts).format(d);
  } catch (e) {
    return d.toISOString();
  }
}

function stateBadge(s) { return el('span', { class: 'state state-' + s, 'data-state': s }, s); }

function bar(job, big) {
  const p = (job && job.progress && job.progress.percentage) || 0;
  return el('div', { class: big ? 'meter big' : 'meter', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': p, 'aria-label': 'Progress of ' + (job ? job.job_id : '') },
    el('div', { class: 'track' }, el('span', { style: 'width:' + p + '%' })), el('b', {}, p + '%'));
}

function setBar(node, job) {
  if (!node) return;
  const p = job.progress.percentage || 0;
  node.setAttribute('aria-valuenow', p);
  $('span', node).style.width = p + '%';
  $('b', node).textContent = p + '%';
}

function table(headers, rows, empty) {
  if (!rows.length) return el('p', { class: 'empty' }, empty || 'Nothing here.');
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('thead', {}, el('tr', {}, headers.map(h => el('th', { scope: 'col', class: h.cls }, h.label || h)))),
    el('tbody', {}, rows)));
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.filter(p => p).map(([k, v, id]) =>
    el('div', {}, el('dt', {}, k), el('dd', { id: id }, v === undefined || v === null || v === '' ? '–' : v))));
}

// ---------- the API

class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || ('HTTP ' + status));
    this.status = status;
    this.code = e.code || '';
    this.details = e.details || [];
  }
  describe() {
    let m = (this.code ? this.code + ': ' : '') + this.message;
    for (const d of this.details) m += ' — ' + [d.field, d.message].filter(Boolean).join(': ');
    return m;
  }
}

function authHeaders(extra) {
  const h = Object.assign({}, extra);
  const k = sessionStorage.getItem(KEY);
  if (k) h.Authorization = 'Bearer ' + k;
  return h;
}

async function api(method, path, body, opts) {
  const init = { method, headers: authHeaders(opts && opts.headers), signal: opts && opts.signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(new URL(path, API), init);
  if (opts && opts.raw && res.ok) return res;
  let data = null;
  if ((res.headers.get('Content-Type') || '').includes('json')) data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new APIError(res.status, data);
    if (res.status === 401) signedOut(err.message);
    throw err;
  }
  return data ? data.data : null;
}

// stream follows the job's Server-Sent Events (GET jobs/{id}/stream) and
// calls onJob with each job snapshot: "progress" carries the job, the
// lifecycle events carry it under "job", "end" carries the final job.
// EventSource cannot send the Authorization header, so this reads the
// stream with fetch.
async function stream(id, onJob, signal) {
  const res = await api('GET', 'jobs/' + encodeURIComponent(id) + '/stream', undefined,
    { raw: true, signal, headers: { Accept: 'text/event-stream' } });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, '\n');
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
      if (!data.length) continue;
      let msg;
      try { msg = JSON.parse(data.join('\n')); } catch (e) { continue; }
      const job = event.startsWith('job_') ? msg.job : msg;
      if (job && job.job_id) onJob(job, event);
      if (event === 'end') return;
    }
  }
}

// follow keeps a job live through its stream until it ends or the view
// changes.
function follow(id, onJob) {
  const ctl = new AbortController();
  controllers.push(ctl);
  return stream(id, onJob, ctl.signal).catch(e => {
    if (e.name !== 'AbortError') console.warn('stream', id, e);
  });
}

function stopStreams() {
  for (const c of controllers) c.abort();
  controllers = [];
}

// ---------- sign-in

function signedOut(message) {
  sessionStorage.removeItem(KEY);
  stopStreams();
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#view').replaceChildren();
  $('#signin').hidden = false;
  flash(message ? 'Sign-in failed (401): ' + message : '');
  $('#key').focus();
}

async function signIn(key) {
  if (key) sessionStorage.setItem(KEY, key);
  await api('GET', 'jobs?limit=1'); // 401 lands in signedOut
  $('#signin').hidden = true;
  $('#nav').hidden = false;
  $('#signout').hidden = !sessionStorage.getItem(KEY);
  flash('');
  route();
}

// ---------- views

const views = [
  [/^#\/jobs\/([^/?]+)$/, jobView],
  [/^#\/jobs(\?.*)?$/, jobsView],
  [/^#\/templates\/([^/?]+)$/, templateView],
  [/^#\/templates$/, templatesView],
  [/^#\/schedules\/([^/?]+)$/, scheduleView],
  [/^#\/schedules$/, schedulesView],
  [/^#\/webhooks\/([^/?]+)$/, webhookView],
  [/^#\/webhooks$/, webhooksView],
];

async function route() {
  if (!$('#signin').hidden) return;
  stopStreams();
  const gen = ++routeGen;
  const hash = location.hash || '#/jobs';
  for (const a of document.querySelectorAll('nav a')) {
    const on = hash.startsWith(a.getAttribute('href'));
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const view = $('#view');
  for (const [re, fn] of views) {
    const m = hash.match(re);
    if (!m) continue;
    try {
      const node = await fn(m.slice(1).map(x => x && decodeURIComponent(x)), gen);
      if (gen !== routeGen) return;
      view.replaceChildren(node);
      const h1 = $('h1', view);
      document.title = (h1 ? h1.textContent + ' – ' : '') + 'Batch dashboard';
      view.dataset.shown = hash;
      const target = (focusNext && document.getElementById(focusNext)) || h1;
      focusNext = '';
      if (target === h1 && h1) h1.tabIndex = -1;
      if (target) target.focus({ preventScroll: target === h1 });
    } catch (e) {
      if (gen !== routeGen || e.status === 401) return;
      view.replaceChildren(el('h1', {}, 'Could not load this page'), el('p', { role: 'alert' }, e.describe ? e.describe() : String(e)));
    }
    return;
  }
  location.replace('#/jobs');
}

function pager(next, onNext, prevStack, onPrev) {
  return el('div', { class: 'toolbar' },
    el('button', { type: 'button', class: 'secondary', disabled: !prevStack.length, onclick: onPrev }, 'Previous page'),
    el('button', { type: 'button', class: 'secondary', disabled: !next, onclick: onNext }, 'Next page'));
}

// jobsView: the caller's jobs, filtered by state and paged; running jobs'
// bars follow their streams.
async function jobsView([query]) {
  const q = new URLSearchParams((query || '').slice(1));
  const state = q.get('state') || '';
  const cursor = q.get('cursor') || '';
  const params = new URLSearchParams({ limit: '20' });
  if (state) params.set('state', state);
  if (cursor) params.set('cursor', cursor);
  const page = await api('GET', 'jobs?' + params);
  const jobs = page.jobs || [];

  const sel = el('select', { id: 'state-filter', onchange: () => { focusNext = 'state-filter'; location.hash = '#/jobs' + (sel.value ? '?state=' + sel.value : ''); } },
    el('option', { value: '' }, 'All states'),
    ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'].map(s => el('option', { value: s, selected: s === state }, s)));
  const rows = jobs.map(j => el('tr', { 'data-job': j.job_id },
    el('td', {}, el('a', { href: '#/jobs/' + encodeURIComponent(j.job_id) }, j.job_id)),
    el('td', { class: 'st' }, stateBadge(j.status)),
    el('td', { class: 'hide-narrow' }, j.type || '–'),
    el('td', { class: 'hide-narrow' }, j.description || ''),
    el('td', {}, bar(j)),
    el('td', { class: 'hide-narrow' }, fmtTime(j.created_at))));

  // Live bars: a few streams at a time; the next starts when one ends.
  const live = jobs.filter(j => !FINAL.has(j.status));
  const pump = () => {
    const j = live.shift();
    if (!j) return;
    const row = rows.find(r => r.dataset.job === j.job_id);
    follow(j.job_id, job => {
      setBar($('[role=progressbar]', row), job);
      const st = $('.st', row);
      if (st.textContent !== job.status) st.replaceChildren(stateBadge(job.status));
    }).then(pump);
  };
  for (let i = 0; i < MAX_STREAMS; i++) pump();

  const prev = q.get('prev') ? q.get('prev').split(',') : [];
  const go = (c, p) => {
    const n = new URLSearchParams();
    if (state) n.set('state', state);
    if (c) n.set('cursor', c);
    if (p.length) n.set('prev', p.join(','));
    location.hash = '#/jobs' + (n.toString() ? '?' + n : '');
  };
  return el('section', {},
    el('h1', {}, 'Jobs'),
    el('div', { class: 'toolbar' }, el('label', { for: 'state-filter', class: 'inline' }, 'State'), sel,
      el('button', { type: 'button', class: 'secondary', onclick: route }, 'Refresh')),
    table(['Job', 'State', { label: 'Type', cls: 'hide-narrow' }, { label: 'Description', cls: 'hide-narrow' }, 'Progress', { label: 'Created', cls: 'hide-narrow' }],
      rows, state ? 'No ' + state + ' jobs.' : 'No jobs yet.'),
    pager(page.next_cursor, () => go(page.next_cursor, prev.concat([cursor || '-'])), prev,
      () => { const p = prev.slice(); const c = p.pop(); go(c === '-' ? '' : c, p); }));
}

// A paged table loaded on demand (errors, audit trail, deliveries).
function pagedTable(title, id, load, headers, row, empty) {
  const box = el('section', { 'aria-labelledby': id + '-h' }, el('h2', { id: id + '-h' }, title));
  const body = el('div', { id });
  box.append(body);
  const stack = [];
  let cursor = '';
  const show = async () => {
    try {
      const page = await load(cursor);
      const items = page.items;
      body.replaceChildren(table(headers, items.map(row), empty),
        page.next_cursor || stack.length ? pager(page.next_cursor, () => { stack.push(cursor); cursor = page.next_cursor; show(); }, stack,
          () => { cursor = stack.pop(); show(); }) : '');
    } catch (e) {
      body.replaceChildren(el('p', { role: 'alert' }, e.describe ? e.describe() : String(e)));
    }
  };
  show();
  // A fresh look at the first page (the list may have grown).
  box.reload = () => { if (!stack.length) show(); };
  return box;
}

function stats(job) {
  const s = job.statistics || {};
  const p = job.progress;
  const cur = p.current_operation;
  return facts([
    ['Completed', p.completed, 'f-completed'],
    ['Failed', p.failed, 'f-failed'],
    ['Total operations', p.total_operations, 'f-total'],
    ['Success rate', s.success_rate !== undefined ? s.success_rate + '%' : '', 'f-rate'],
    ['Average operation time', s.average_operation_time, 'f-avg'],
    ['Estimated remaining (ETA)', s.estimated_remaining_time, 'f-eta'],
    ['Estimated completion', job.estimated_completion ? fmtTime(job.estimated_completion) : '', 'f-etc'],
    ['Current operation', cur ? '#' + cur.index + ' ' + cur.type + (cur.resource_id ? ' on ' + cur.resource_id : '') : '', 'f-current'],
    ['Created', fmtTime(job.created_at)],
    ['Started', fmtTime(job.started_at)],
    ['Finished', fmtTime(job.finished_at)],
  ]);
}

// jobView: one job, live; control buttons follow the state machine.
async function jobView([id]) {
  const enc = encodeURIComponent(id);
  let job = await api('GET', 'jobs/' + enc);
  const badge = el('span', { id: 'job-state' });
  const progress = el('div', {});
  const results = el('section', { 'aria-labelledby': 'results-h' });
  let audit = null, errors = null;
  const act = async (what, method, path) => {
    try {
      const j = await api(method, 'jobs/' + enc + path);
      if (what === 'delete') { flash('Job ' + id + ' deleted.', 'info'); location.hash = '#/jobs'; return; }
      flash('Job ' + what + 'd.', 'info');
      render(j, 'job_' + what);
    } catch (e) {
      if (e.status === 409) flash('Cannot ' + what + ' this job now: ' + e.message + ' (409)');
      else if (e.status !== 401) flash(e.describe());
      api('GET', 'jobs/' + enc).then(render).catch(() => {});
    }
  };
  // The buttons stay put (and keep the keyboard focus) while the job
  // changes; only whether each is allowed follows its state.
  const buttons = {
    pause: el('button', { type: 'button', onclick: () => act('pause', 'POST', '/pause') }, 'Pause'),
    resume: el('button', { type: 'button', onclick: () => act('resume', 'POST', '/resume') }, 'Resume'),
    cancel: el('button', { type: 'button', class: 'secondary', onclick: () => act('cancel', 'POST', '/cancel') }, 'Cancel'),
    delete: el('button', { type: 'button', class: 'danger',
      onclick: () => { if (confirm('Delete job ' + id + '?')) act('delete', 'DELETE', ''); } }, 'Delete'),
  };
  const allowed = {
    pause: s => s === 'running' || s === 'queued',
    resume: s => s === 'paused',
    cancel: s => !FINAL.has(s),
    delete: s => FINAL.has(s),
  };
  const head = el('div', { class: 'toolbar' }, badge, Object.values(buttons));
  const render = (j, event) => {
    job = j;
    if (event && event !== 'progress') { // a transition: new audit entries, maybe errors
      if (audit) audit.reload();
      if (errors) errors.reload();
    }
    const changed = badge.textContent !== j.status;
    if (changed) {
      badge.replaceChildren(stateBadge(j.status));
      results.replaceChildren(el('h2', { id: 'results-h' }, 'Results'), resultsTable(j));
    }
    for (const [k, b] of Object.entries(buttons)) b.disabled = !allowed[k](j.status);
    const b = $('[role=progressbar]', progress);
    if (b) { setBar(b, j); progress.replaceChild(stats(j), progress.lastChild); }
    else progress.replaceChildren(bar(j, true), stats(j));
  };
  render(job);
  if (!FINAL.has(job.status)) follow(id, render);

  errors = pagedTable('Errors', 'errors', async c => {
    const p = await api('GET', 'jobs/' + enc + '/errors?limit=10' + (c ? '&cursor=' + encodeURIComponent(c) : ''));
    return { items: p.errors || [], next_cursor: p.next_cursor };
  }, ['Code', 'Message', 'Attempts', 'Resource', 'Operation'], e => el('tr', {},
    el('td', {}, e.error.code), el('td', {}, e.error.message), el('td', { class: 'num' }, e.attempts),
    el('td', {}, e.resource_id || '–'), el('td', { class: 'num' }, e.operation_index)), 'No failed items.');
  audit = pagedTable('Audit trail', 'audit', async c => {
    const p = await api('GET', 'jobs/' + enc + '/events?limit=20' + (c ? '&cursor=' + encodeURIComponent(c) : ''));
    return { items: p.events || [], next_cursor: p.next_cursor };
  }, ['When', 'Event', 'By'], e => el('tr', {},
    el('td', {}, fmtTime(e.at)), el('td', {}, e.type), el('td', {}, e.principal || 'system')), 'No events.');

  return el('section', {},
    el('p', {}, el('a', { href: '#/jobs' }, '← All jobs')),
    el('h1', {}, 'Job ', id),
    job.description ? el('p', {}, job.description) : null,
    head, progress, results, errors, audit);
}

function resultsTable(job) {
  const rs = job.results || [];
  return table(['Operation', 'Type', 'Summary', 'Artifact'], rs.map(r => el('tr', {},
    el('td', { class: 'num' }, r.operation_index), el('td', {}, r.type),
    el('td', {}, r.summary !== undefined ? el('pre', {}, JSON.stringify(r.summary, null, 1)) : '–'),
    el('td', {}, r.artifact ? el('button', { type: 'button', class: 'secondary', onclick: () => download(job.job_id, r.artifact) },
      'Download ' + r.artifact.name + ' (' + r.artifact.size + ' bytes)') : '–'))),
  FINAL.has(job.status) ? 'No results.' : 'Results appear when the job finishes.');
}

// download fetches an artifact with the key and saves it.
async function download(id, art) {
  try {
    const res = await api('GET', 'jobs/' + encodeURIComponent(id) + '/artifacts/' + encodeURIComponent(art.name), undefined, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: art.name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    if (e.status !== 401) flash(e.describe());
  }
}

async function templatesView() {
  const page = await api('GET', 'templates?limit=100');
  return el('section', {}, el('h1', {}, 'Templates'),
    table(['Name', 'Description', 'Parameters', 'Updated'], (page.templates || []).map(t => el('tr', {},
      el('td', {}, el('a', { href: '#/templates/' + encodeURIComponent(t.id) }, t.name)),
      el('td', {}, t.description || ''), el('td', {}, (t.parameters || []).map(p => p.name).join(', ') || '–'),
      el('td', {}, fmtTime(t.updated_at)))), 'No templates yet.'));
}

// paramInput builds the form control for one typed template parameter.
function paramInput(p) {
  const id = 'param-' + p.name;
  const attrs = { id, name: p.name, required: !!p.required, 'aria-describedby': p.description ? id + '-hint' : undefined };
  let input;
  if (p.enum && p.enum.length) {
    input = el('select', attrs, p.required ? null : el('option', { value: '' }, '(not set)'),
      p.enum.map(v => el('option', { value: JSON.stringify(v), selected: p.default === v }, String(v))));
  } else if (p.type === 'boolean') {
    input = el('input', Object.assign(attrs, { type: 'checkbox', required: false, checked: p.default === true }));
  } else if (p.type === 'number' || p.type === 'integer') {
    input = el('input', Object.assign(attrs, { type: 'number', step: p.type === 'integer' ? '1' : 'any',
      value: p.default !== undefined ? p.default : undefined }));
  } else if (p.type === 'array' || p.type === 'object') {
    input = el('textarea', Object.assign(attrs, { rows: 3, placeholder: p.type === 'array' ? '["a", "b"]' : '{"key": "value"}' }),
      p.default !== undefined ? JSON.stringify(p.default) : '');
  } else if (p.type === 'date') {
    input = el('input', Object.assign(attrs, { type: 'date', value: p.default }));
  } else if (p.type === 'datetime') {
    input = el('input', Object.assign(attrs, { type: 'text', value: p.default, placeholder: '2025-01-19T00:52:03Z',
      'aria-describedby': id + '-hint' }));
    p = Object.assign({}, p, { description: (p.description ? p.description + '. ' : '') + 'An RFC 3339 time.' });
  } else {
    input = el('input', Object.assign(attrs, { type: 'text', value: p.default !== undefined ? p.default : undefined }));
  }
  input.dataset.type = p.type;
  return el('div', {},
    el('label', { for: id }, p.name, p.required ? ' (required)' : '', ' — ', p.type),
    p.description ? el('p', { class: 'hint', id: id + '-hint' }, p.description) : null,
    input);
}

function paramValue(input) {
  const t = input.dataset.type;
  if (input.type === 'checkbox') return input.checked;
  if (input.value === '') return undefined;
  if (input.tagName === 'SELECT') return JSON.parse(input.value);
  if (t === 'number' || t === 'integer') return Number(input.value);
  if (t === 'array' || t === 'object') return JSON.parse(input.value);
  return input.value;
}

async function templateView([id]) {
  const t = await api('GET', 'templates/' + encodeURIComponent(id));
  const params = t.parameters || [];
  const msg = el('p', { role: 'status', id: 'form-msg' });
  const form = el('form', { id: 'create-job', 'aria-labelledby': 'create-h', novalidate: false },
    params.map(paramInput),
    el('div', { class: 'toolbar' }, el('button', { type: 'submit' }, 'Create job')), msg);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const values = {};
    try {
      for (const input of form.querySelectorAll('[name]')) {
        const v = paramValue(input);
        if (v !== undefined) values[input.name] = v;
      }
    } catch (e) {
      msg.textContent = 'A JSON value is not valid: ' + e.message;
      return;
    }
    try {
      const job = await api('POST', 'jobs', { batch: { template_id: t.id, parameters: values } });
      flash('Job ' + job.job_id + ' created from ' + t.name + '.', 'info');
      location.hash = '#/jobs/' + encodeURIComponent(job.job_id);
    } catch (e) {
      if (e.status !== 401) msg.textContent = e.describe();
    }
  });
  return el('section', {},
    el('p', {}, el('a', { href: '#/templates' }, '← All templates')),
    el('h1', {}, 'Template ', t.name),
    t.description ? el('p', {}, t.description) : null,
    facts([['ID', t.id], ['Created', fmtTime(t.created_at)], ['Updated', fmtTime(t.updated_at)]]),
    el('h2', { id: 'create-h' }, 'Create a job from this template'),
    params.length ? null : el('p', {}, 'This template takes no parameters.'),
    form,
    el('h2', {}, 'Operations'),
    el('pre', {}, JSON.stringify(t.operations, null, 2)));
}

function timingText(tm) {
  if (tm.cron) return 'cron ' + tm.cron + (tm.timezone ? ' (' + tm.timezone + ')' : '');
  return [tm.frequency, tm.time && 'at ' + tm.time, tm.days_of_week && tm.days_of_week.join(','),
    tm.day_of_month && 'day ' + tm.day_of_month, tm.at, tm.timezone && '(' + tm.timezone + ')'].filter(Boolean).join(' ');
}

async function schedulesView() {
  const page = await api('GET', 'schedules?limit=100');
  return el('section', {}, el('h1', {}, 'Schedules'),
    table(['Name', 'Status', 'Timing', 'Next run (schedule\u2019s zone)', 'Last job'], (page.schedules || []).map(s => el('tr', {},
      el('td', {}, el('a', { href: '#/schedules/' + encodeURIComponent(s.id) }, s.name)),
      el('td', {}, stateBadge(s.status)), el('td', {}, timingText(s.timing)),
      el('td', {}, fmtTime(s.next_run_at, s.timing.timezone || 'UTC')),
      el('td', {}, s.last_job_id ? el('a', { href: '#/jobs/' + encodeURIComponent(s.last_job_id) }, s.last_job_id) : '–'))),
    'No schedules yet.'));
}

async function scheduleView([id]) {
  const enc = encodeURIComponent(id);
  const s = await api('GET', 'schedules/' + enc);
  const zone = s.timing.timezone || 'UTC';
  let runs = [];
  try { runs = (await api('GET', 'schedules/' + enc + '/preview?n=5')).runs; } catch (e) { /* shown as none */ }
  const toggle = async () => {
    try {
      await api('POST', 'schedules/' + enc + (s.status === 'paused' ? '/resume' : '/pause'));
      route();
    } catch (e) {
      if (e.status !== 401) flash(e.describe());
    }
  };
  return el('section', {},
    el('p', {}, el('a', { href: '#/schedules' }, '← All schedules')),
    el('h1', {}, 'Schedule ', s.name),
    s.description ? el('p', {}, s.description) : null,
    el('div', { class: 'toolbar' }, stateBadge(s.status),
      el('button', { type: 'button', onclick: toggle }, s.status === 'paused' ? 'Resume schedule' : 'Pause schedule')),
    facts([['Timing', timingText(s.timing)], ['Time zone', zone], ['Next run', fmtTime(s.next_run_at, zone), 'next-run'],
      ['Last run', fmtTime(s.last_run_at, zone)],
      ['Last job', s.last_job_id ? el('a', { href: '#/jobs/' + encodeURIComponent(s.last_job_id) }, s.last_job_id) : ''],
      ['Template', s.batch.template_id ? el('a', { href: '#/templates/' + encodeURIComponent(s.batch.template_id) }, s.batch.template_id) : '']]),
    el('h2', {}, 'Next runs'),
    runs.length ? el('ol', {}, runs.map(r => el('li', {}, fmtTime(r, zone)))) : el('p', { class: 'empty' }, 'No upcoming runs.'),
    el('h2', {}, 'Batch'),
    el('pre', {}, JSON.stringify(s.batch, null, 2)));
}

async function webhooksView() {
  const page = await api('GET', 'webhooks?limit=100');
  return el('section', {}, el('h1', {}, 'Webhooks'),
    table(['URL', 'Events', 'Description', 'Created'], (page.webhooks || []).map(w => el('tr', {},
      el('td', {}, el('a', { href: '#/webhooks/' + encodeURIComponent(w.id) }, w.url)),
      el('td', {}, (w.events || []).join(', ') || 'all'), el('td', {}, w.description || ''),
      el('td', {}, fmtTime(w.created_at)))), 'No webhooks yet.'));
}

async function webhookView([id]) {
  const enc = encodeURIComponent(id);
  const w = await api('GET', 'webhooks/' + enc);
  const deliveries = pagedTable('Recent deliveries', 'deliveries', async c => {
    const p = await api('GET', 'webhooks/' + enc + '/deliveries?limit=20' + (c ? '&cursor=' + encodeURIComponent(c) : ''));
    return { items: p.deliveries || [], next_cursor: p.next_cursor };
  }, ['Created', 'Event', 'Job', 'Outcome', 'Attempts', 'Last answer', 'Settled'], d => el('tr', {},
    el('td', {}, fmtTime(d.created_at)), el('td', {}, d.event),
    el('td', {}, d.job_id ? el('a', { href: '#/jobs/' + encodeURIComponent(d.job_id) }, d.job_id) : '–'),
    el('td', {}, stateBadge(d.status)), el('td', { class: 'num' }, d.attempts),
    el('td', {}, d.last_status_code ? 'HTTP ' + d.last_status_code : (d.last_error || '–')),
    el('td', {}, fmtTime(d.settled_at))), 'No deliveries yet.');
  return el('section', {},
    el('p', {}, el('a', { href: '#/webhooks' }, '← All webhooks')),
    el('h1', {}, 'Webhook ', w.id),
    facts([['URL', w.url], ['Events', (w.events || []).join(', ') || 'all'], ['Description', w.description],
      ['Created', fmtTime(w.created_at)], ['Updated', fmtTime(w.updated_at)]]),
    deliveries);
}

// ---------- start

function start() {
  // #key=... signs in; the fragment never reaches the server, and it is
  // removed from the address bar and history at once.
  const m = location.hash.match(/^#key=(.+)$/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search + '#/jobs');
  }
  $('#signin-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const key = $('#key').value.trim();
    $('#key').value = '';
    signIn(key).catch(() => {});
  });
  $('#signout').addEventListener('click', () => { signedOut(''); });
  window.addEventListener('hashchange', route);
  if (sessionStorage.getItem(KEY)) {
    $('#signin').hidden = true;
    signIn('').catch(() => {});
    return;
  }
  // An open API (no keys configured) needs no sign-in.
  fetch(new URL('jobs?limit=1', API)).then(res => {
    if (res.ok) signIn('').catch(() => {});
    else signedOut('');
  }, () => signedOut(''));
}

start();
