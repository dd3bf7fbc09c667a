// Backout dashboard: keeps the server-rendered pages live. No build step,
// no library. Text from the coordinator is only ever set as textContent.
(() => {
  'use strict';
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const banner = document.getElementById('banner');

  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // Times: UTC, and how long ago (kept fresh).
  const rough = (ms) => {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} m`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
    return `${Math.floor(s / 86400)} d`;
  };
  const utc = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  const refreshTimes = (root) => {
    for (const t of root.querySelectorAll('time[data-ms]')) {
      const ms = Number(t.dataset.ms);
      if (!ms) continue;
      if (t.closest('#log')) {
        t.textContent = utc(ms).slice(11, 19);
        t.title = utc(ms);
        continue;
      }
      const ago = Date.now() - ms;
      t.textContent = `${utc(ms)} (${ago < 0 ? 'in ' + rough(-ago) : rough(ago) + ' ago'})`;
    }
  };
  refreshTimes(document);
  setInterval(() => refreshTimes(document), 5000);

  // A state as a word in a coloured badge (same rules as pages.rs `tone`).
  const tone = (state) => {
    const s = (state || '').toLowerCase();
    if (['succeeded', 'ok', 'up', 'connected', 'healthy', 'no action', 'intact', 'live', 'no'].includes(s)) return 'good';
    if (['running', 'dispatched', 'connecting'].includes(s)) return 'busy';
    if (['awaiting-approval', 'waiting', 'pending', 'breaching', 'reconnecting', 'partly', 'unknown', 'skipped', 'slow'].includes(s)) return 'wait';
    if (['failed', 'fired', 'gone', 'aborted', 'timed-out', 'unreachable', 'unhealthy', 'down', 'broken', 'rollback'].includes(s)
      || s.startsWith('refused') || s.includes('rollback') || s.includes('broken')) return 'bad';
    return 'none';
  };
  const badge = (state) => el('span', { class: `st st-${tone(state)}` }, state || '-');

  const showDown = (down) => { banner.hidden = !down; };

  // Forms: a refusal needs a reason; every change asks for confirmation.
  // On the Run page they are sent without leaving the page.
  const note = (form, text, ok) => {
    let n = form.parentElement.querySelector('.note');
    if (!n) { n = el('p', { class: 'note', role: 'status' }); form.after(n); }
    n.className = ok ? 'note' : 'note error';
    n.textContent = text;
  };
  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    const why = form.querySelector('[name="why"]');
    if (why && !why.value.trim()) {
      ev.preventDefault();
      why.setCustomValidity('A refusal needs a reason.');
      why.reportValidity();
      note(form, 'A refusal needs a reason.', false);
      return;
    }
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
      return;
    }
    if (!form.closest('#run')) return; // a plain POST, then a redirect
    ev.preventDefault();
    const button = form.querySelector('button');
    if (button) button.disabled = true;
    try {
      const res = await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        headers: { 'X-CSRF-Token': csrf, Accept: 'application/json' },
      });
      const doc = await res.json().catch(() => ({ ok: false, error: res.statusText }));
      // An undo is a run of its own: show it.
      if (doc.ok && form.id === 'undo' && doc.run && doc.run.run) {
        window.location.assign(`/runs/${encodeURIComponent(doc.run.run)}`);
        return;
      }
      note(form, doc.ok ? 'done' : doc.error, doc.ok);
    } catch (e) {
      note(form, `the dashboard is unreachable: ${e}`, false);
    } finally {
      if (button) button.disabled = false;
    }
  });
  document.addEventListener('input', (ev) => {
    if (ev.target.name === 'why') ev.target.setCustomValidity('');
  });

  // Now, Fleet, Runs: the part marked #live is fetched again now and then.
  const live = document.getElementById('live');
  if (live && live.dataset.refresh) {
    setInterval(async () => {
      try {
        const res = await fetch(location.href, { headers: { Accept: 'text/html' } });
        const page = new DOMParser().parseFromString(await res.text(), 'text/html');
        const fresh = page.getElementById('live');
        // The coordinator is back and the page is another one (a Run page
        // first shown as "reconnecting"): load it whole.
        if (!fresh && res.ok) location.reload();
        if (fresh) {
          live.innerHTML = fresh.innerHTML;
          refreshTimes(live);
        }
        showDown(!res.ok);
      } catch (e) {
        showDown(true);
      }
    }, Number(live.dataset.refresh) * 1000);
  }

  // Run: server-sent events keep the grid, the approvals and the log live.
  const run = document.getElementById('run');
  if (!run) return;
  const id = run.dataset.run;

  const eventText = (e) => {
    const at = `${e.phase || ''}/${e.step || ''}@${e.host || ''}`;
    switch (e.kind) {
      case 'started': return `run started by ${e.by}`;
      case 'approved': return `${e.by} approved ${e.phase} as ${e.role}`;
      case 'refused': return `${e.by} REFUSED ${e.phase} as ${e.role}: ${e.text || ''}`;
      case 'aborted': return `ABORTED by ${e.by}`;
      case 'phase-timed-out': return `phase ${e.phase} TIMED OUT`;
      case 'ended': return `run ended: ${(e.outcome || '').toUpperCase()}`;
      case 'log': return `${at} [${e.role || ''}] ${e.text || ''}`;
      case 'finished': return `${at} ${e.outcome}: ${e.text || ''}`;
      case 'dispatched': return `${at} sent`;
      default: return `${e.kind} ${at} ${e.text || ''}`;
    }
  };

  const log = document.getElementById('log');
  const addEvent = (seq, e) => {
    if (e.kind === 'progress' || log.querySelector(`li[data-seq="${seq}"]`)) return;
    const li = el('li', { class: `ev-${e.kind}`, 'data-seq': String(seq) });
    li.append(el('time', { 'data-ms': String(e.at_ms) }, utc(e.at_ms).slice(11, 19)), ` ${eventText(e)}`);
    log.append(li);
    const plan = document.querySelector('#plan tbody');
    if (plan && e.kind === 'finished') {
      const tr = el('tr');
      tr.append(el('td', {}, e.host || ''), el('td', {}, `${e.phase} / ${e.step}`));
      const answer = el('td');
      answer.append(badge(e.outcome));
      tr.append(answer, el('td', {}, e.text || ''));
      plan.append(tr);
    }
    if (e.kind === 'ended') document.getElementById('abort')?.remove();
    if (e.kind === 'refused') {
      const p = el('p', { class: 'refusal' });
      p.append('Refused by ', el('b', {}, e.by), ` as ${e.role}: “${e.text || ''}”`);
      document.getElementById('refusals').append(p);
    }
  };

  const hiddenInput = (name, value) => el('input', { type: 'hidden', name, value });
  let pendingKey = null;
  const renderPending = (r) => {
    const pending = r.pending_approvals || [];
    const key = JSON.stringify(pending.map((p) => [p.scope, p.roles]));
    if (key === pendingKey) return;
    pendingKey = key;
    const box = document.getElementById('pending');
    box.replaceChildren();
    for (const p of pending) {
      const div = el('div', { class: 'approval', 'data-scope': p.scope });
      div.append(el('p', {}, `Waiting on ${p.scope}: ${p.roles.join(' + ')}`));
      const approve = el('form', { method: 'post', action: `/runs/${id}/approve`, class: 'approve',
        'data-confirm': `Approve ${p.scope} of ${id} as yourself?` });
      approve.append(hiddenInput('csrf', csrf), hiddenInput('scope', p.scope), el('button', { class: 'go' }, 'Approve'));
      const refuse = el('form', { method: 'post', action: `/runs/${id}/approve`, class: 'refuse',
        'data-confirm': `Refuse ${p.scope} of ${id}? This stops it.` });
      refuse.append(hiddenInput('csrf', csrf), hiddenInput('scope', p.scope), hiddenInput('refuse', '1'),
        el('input', { name: 'why', required: '', placeholder: 'why (required)', 'aria-label': 'reason for refusing' }),
        el('button', { class: 'stop' }, 'Refuse'));
      div.append(approve, refuse);
      box.append(div);
    }
  };

  const renderGrid = (r) => {
    const hosts = [];
    for (const p of r.phases) for (const h of p.hosts) if (!hosts.includes(h.host)) hosts.push(h.host);
    const table = el('table', { id: 'grid' });
    const head = el('tr');
    head.append(el('th', {}, 'Phase'), ...hosts.map((h) => el('th', {}, h)));
    table.append(el('thead'));
    table.tHead.append(head);
    const body = el('tbody');
    for (const p of r.phases) {
      const tr = el('tr');
      const th = el('th');
      th.append(`${p.id} `, badge(p.status), el('div', { class: 'muted' }, p.detail || ''));
      tr.append(th);
      for (const host of hosts) {
        const h = p.hosts.find((x) => x.host === host);
        if (!h) { tr.append(el('td', { class: 'muted' }, '·')); continue; }
        const td = el('td', { 'data-phase': p.id, 'data-host': host });
        const total = Math.max(h.steps_total, 1);
        td.append(badge(h.state), ' ', el('span', { class: 'step' }, h.step || ''),
          el('progress', { max: String(total), value: String(h.steps_done) }, `${h.steps_done}/${total}`),
          el('div', { class: 'muted' }, h.detail || ''));
        tr.append(td);
      }
      body.append(tr);
    }
    table.append(body);
    document.getElementById('grid-box').replaceChildren(table);
  };

  // An ended, real remedy run can be undone (as pages.rs renders it when
  // the page is loaded after the end): the button appears when it ends.
  const offerUndo = (r) => {
    if (r.remedy !== true || r.finished_at_ms == null || r.dry_run === true) return;
    if (document.getElementById('undo')) return;
    const undo = el('form', { method: 'post', action: `/runs/${id}/undo`, class: 'inline', id: 'undo',
      'data-confirm': `Undo remedy run ${id}? A run of its own puts back what it changed; it needs the remedy's approvals.` });
    undo.append(hiddenInput('csrf', csrf), el('button', {}, 'Undo remedy'));
    run.querySelector('.actions')?.append(' ', undo);
  };

  const setLink = (link, error) => {
    showDown(link === 'reconnecting');
    if (link === 'reconnecting') banner.textContent = `reconnecting to the coordinator… ${error || ''}`;
    document.getElementById('link-state').replaceChildren(badge(link));
  };

  const stream = new EventSource(run.dataset.stream);
  stream.addEventListener('link', (m) => {
    const d = JSON.parse(m.data);
    setLink(d.link, d.error);
  });
  stream.addEventListener('summary', (m) => {
    const r = JSON.parse(m.data);
    document.getElementById('run-status').replaceChildren(badge(r.status));
    renderPending(r);
    renderGrid(r);
    if (r.finished_at_ms != null) document.getElementById('abort')?.remove();
    offerUndo(r);
  });
  stream.addEventListener('run', (m) => addEvent(Number(m.lastEventId), JSON.parse(m.data)));
  // The browser reconnects by itself, sending the last event's number.
  stream.addEventListener('error', () => setLink('reconnecting', '(the dashboard itself)'));
})();
