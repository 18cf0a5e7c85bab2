// sweep console: live updates (server-sent events), SQL completion, and
// sorting and filtering of tables. Plain JavaScript, no build step.
'use strict';

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Any data table: click a header to sort by it (numbers as numbers).
function sortable(table) {
  table.querySelectorAll('th').forEach((th, i) => {
    th.addEventListener('click', () => {
      const body = table.tBodies[0];
      const asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(h => delete h.dataset.dir);
      th.dataset.dir = asc ? 'asc' : 'desc';
      const rows = Array.from(body.rows);
      const key = r => r.cells[i] ? r.cells[i].textContent : '';
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const nx = Number(x), ny = Number(y);
        const c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(r => body.appendChild(r));
    });
  });
}

// Rows whose text does not hold the filter's text are hidden.
function filterRows(table, text) {
  const t = text.toLowerCase();
  Array.from(table.tBodies[0].rows).forEach(r => {
    r.hidden = t !== '' && !r.textContent.toLowerCase().includes(t);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('table.data').forEach(sortable);
  const packFile = document.getElementById('pack-file');
  if (packFile) {
    packFile.addEventListener('change', async () => {
      const f = packFile.files[0];
      if (!f) return;
      const text = await f.text();
      document.getElementById('pack-text').value = text;
      const name = document.getElementById('pack-name');
      if (!name.value) name.value = f.name.replace(/\.[^.]*$/, '');
      document.getElementById('pack-file-status').textContent = 'read ' + f.name + ' (' + text.length + ' characters)';
    });
  }
  if (document.getElementById('sql')) editor();
});

// The matches feed.
function sweepMatches(url) {
  const table = document.getElementById('matches');
  const status = document.getElementById('feed-status');
  const filters = ['severity-filter', 'rule-filter', 'host-filter'].map(id => document.getElementById(id));
  const visible = tr => {
    const [sev, rule, host] = filters.map(f => f.value.trim().toLowerCase());
    return (!sev || tr.dataset.severity === sev) &&
      (!rule || tr.dataset.rule.toLowerCase().includes(rule)) &&
      (!host || tr.dataset.host.toLowerCase().includes(host));
  };
  const refilter = () => Array.from(table.tBodies[0].rows).forEach(r => { r.hidden = !visible(r); });
  filters.forEach(f => f.addEventListener('input', refilter));
  let n = 0;
  const src = new EventSource(url);
  src.addEventListener('match', e => {
    const m = JSON.parse(e.data);
    const tr = el('tr', { 'data-severity': m.severity, 'data-rule': m.rule_id, 'data-host': m.host, class: 'match' });
    const when = new Date(m.last_seen * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const row = Object.entries(m.row || {}).map(([k, v]) => k + '=' + v).join(' ');
    [when, m.severity, m.rule_id, m.host, m.title, String(m.count), row].forEach((v, i) => {
      tr.appendChild(el('td', i === 1 ? { class: 'severity-' + m.severity } : {}, v));
    });
    tr.hidden = !visible(tr);
    table.tBodies[0].insertBefore(tr, table.tBodies[0].firstChild);
    n += 1;
    status.textContent = n + ' match(es), live';
  });
  src.addEventListener('caught-up', () => { status.textContent = n + ' match(es), live'; });
  src.addEventListener('failure', e => { status.textContent = 'feed failed: ' + e.data; status.className = 'error'; });
  src.onerror = () => { status.textContent = 'reconnecting…'; };
}

// The SQL editor: table and column completion from the schemas.
async function editor() {
  const sql = document.getElementById('sql');
  const list = document.getElementById('completions');
  const schema = await (await fetch('/api/schema')).json();
  const tables = Object.keys(schema);
  const allColumns = Array.from(new Set(tables.flatMap(t => schema[t]))).sort();
  const keywords = ['SELECT', 'FROM', 'WHERE', 'JOIN', 'LEFT JOIN', 'USING', 'ON', 'AND', 'OR', 'NOT', 'LIKE', 'IN', 'GROUP BY', 'ORDER BY', 'LIMIT', 'AS', 'COUNT(*)', 'DISTINCT'];
  let active = 0, items = [];
  const word = () => {
    const upto = sql.value.slice(0, sql.selectionStart);
    const m = upto.match(/[A-Za-z_][A-Za-z0-9_]*$/);
    return m ? m[0] : '';
  };
  const candidates = w => {
    if (!w) return [];
    const text = sql.value;
    const used = tables.filter(t => new RegExp('\\b' + t + '\\b', 'i').test(text));
    const cols = used.length ? Array.from(new Set(used.flatMap(t => schema[t]))) : allColumns;
    const afterFrom = /\b(from|join)\s+[A-Za-z_]*$/i.test(text.slice(0, sql.selectionStart));
    const pool = afterFrom ? tables : cols.concat(tables, keywords);
    const lw = w.toLowerCase();
    return Array.from(new Set(pool.filter(c => c.toLowerCase().startsWith(lw) && c.toLowerCase() !== lw))).slice(0, 30);
  };
  const close = () => { list.hidden = true; list.innerHTML = ''; items = []; };
  const accept = choice => {
    const w = word();
    const at = sql.selectionStart;
    sql.value = sql.value.slice(0, at - w.length) + choice + sql.value.slice(at);
    const pos = at - w.length + choice.length;
    sql.setSelectionRange(pos, pos);
    close();
    sql.focus();
  };
  const show = () => {
    items = candidates(word());
    list.innerHTML = '';
    if (!items.length) { close(); return; }
    active = 0;
    items.forEach((c, i) => {
      const li = el('li', { class: i === 0 ? 'active' : '' }, c);
      li.addEventListener('mousedown', ev => { ev.preventDefault(); accept(c); });
      list.appendChild(li);
    });
    list.hidden = false;
  };
  sql.addEventListener('input', show);
  sql.addEventListener('keydown', ev => {
    if (list.hidden || !items.length) return;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      list.children[active].className = '';
      active = (active + (ev.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      list.children[active].className = 'active';
    } else if (ev.key === 'Tab' || ev.key === 'Enter') {
      ev.preventDefault();
      accept(items[active]);
    } else if (ev.key === 'Escape') {
      close();
    }
  });
  // Closed when the editor loses focus for good (a click on a suggestion
  // blurs it for a moment).
  sql.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== sql) close(); }, 100));
  document.getElementById('hunt-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    const err = document.getElementById('sql-error');
    err.hidden = true;
    const body = {
      sql: sql.value,
      hosts: document.getElementById('hosts').value,
      labels: document.getElementById('labels').value,
      discovery: document.getElementById('discovery').value,
      timeout: Number(document.getElementById('timeout').value) || 30,
    };
    const resp = await fetch('/api/hunts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answer = await resp.json().catch(() => ({ error: 'the console answered ' + resp.status }));
    if (!resp.ok) {
      err.hidden = false;
      err.textContent = answer.error;
      if (typeof answer.position === 'number') {
        const at = Math.min(answer.position, sql.value.length);
        sql.focus();
        sql.setSelectionRange(at, Math.min(at + 1, sql.value.length));
        err.textContent += '  (at character ' + (at + 1) + ')';
      }
      return;
    }
    location.href = '/hunts/' + answer.id;
  });
}

// A hunt's page: progress, rows as they arrive, who failed or did not answer.
function sweepHunt(id) {
  const table = document.getElementById('rows');
  const head = table.tHead.rows[0];
  const body = table.tBodies[0];
  const columns = [];
  const counts = { rows: 0 };
  const set = (k, v) => { const e = document.getElementById(k); if (e) e.textContent = v; };
  const filter = document.getElementById('row-filter');
  filter.addEventListener('input', () => filterRows(table, filter.value));
  const src = new EventSource('/api/hunts/' + id + '/events');
  src.addEventListener('row', e => {
    const r = JSON.parse(e.data);
    const cols = Object.keys(r.columns);
    if (!columns.length) {
      columns.push('host', ...cols);
      columns.forEach(c => head.appendChild(el('th', {}, c)));
      sortable(table);
    }
    const tr = el('tr');
    tr.appendChild(el('td', {}, r.host));
    columns.slice(1).forEach(c => tr.appendChild(el('td', {}, r.columns[c] ?? '')));
    tr.hidden = filter.value !== '' && !tr.textContent.toLowerCase().includes(filter.value.toLowerCase());
    body.appendChild(tr);
    counts.rows += 1;
    set('row-count', counts.rows);
  });
  src.addEventListener('reset', () => {
    // The final, verified rows replace the ones shown while they came.
    body.innerHTML = '';
    counts.rows = 0;
    set('row-count', 0);
  });
  src.addEventListener('outcomes-reset', () => {
    document.getElementById('outcomes').tBodies[0].innerHTML = '';
  });
  src.addEventListener('progress', e => {
    const p = JSON.parse(e.data);
    set('expected', p.expected); set('answered', p.answered); set('failed', p.failed);
  });
  src.addEventListener('outcome', e => {
    const o = JSON.parse(e.data);
    const t = document.getElementById('outcomes').tBodies[0];
    const tr = el('tr');
    [o.host, o.outcome, o.reason || ''].forEach(v => tr.appendChild(el('td', {}, v)));
    t.appendChild(tr);
  });
  src.addEventListener('done', e => {
    const d = JSON.parse(e.data);
    set('hunt-state', 'done in ' + d.elapsed + ' s');
    document.getElementById('downloads').hidden = false;
    src.close();
  });
  src.addEventListener('failure', e => { set('hunt-state', 'failed: ' + e.data); src.close(); });
}
