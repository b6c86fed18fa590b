//! The /today page: the signed-in person's (or classroom device's) lessons of the day with the way into each; it must never show a raw value (a null title, an ISO time, an untranslated mode).
// @ts-check

import { api, header, h, t, hhmm, modeLabel, showError, dateText, lessonStateOf } from '/app.js';

let me = null;
// Where a lesson is entered: its hub teacher (or an admin) teaches; everyone else watches.
const entry = (l) => {
  if (me.kind === 'device') return h('a', { class: 'button', href: `/classroom?lesson=${l.id}` }, t('enter'));
  if (me.role === 'admin' || (me.role === 'teacher' && me.teacher_id === l.hub_teacher_id)) {
    return h('a', { class: 'button', href: `/teach?lesson=${l.id}` }, t('teach'));
  }
  return h('a', { class: 'button secondary', href: `/classroom?lesson=${l.id}` }, t('watch'));
};
// Only what is there: a lesson without a title or grade gets no empty line and no "null"
// (replaceChildren would print a null child as the word).
/** @type {{ teacher_names?: Record<string, string>, classroom_names?: Record<string, string> }} */
let names = {};
const describe = (l) => [
  h('div', { class: 'when' }, `${hhmm(l.starts)}–${hhmm(l.ends)}`),
  h('div', { class: 'what' }, [l.subject, l.grade, modeLabel(l.mode)].filter(Boolean).join(' · ')),
  l.title ? h('div', { class: 'title' }, l.title) : null,
  // Who teaches and where, by name (never an id).
  h('div', { class: 'who' }, [names.teacher_names?.[l.hub_teacher_id], names.classroom_names?.[l.hub_classroom_id]].filter(Boolean).join(' · ')),
].filter((x) => x != null);
const render = (d) => {
  names = d;
  document.getElementById('date').textContent = dateText(d.date);
  for (const which of ['now', 'next']) {
    const l = which === 'now' ? d.current : d.next;
    const body = document.querySelector(`#${which} .body`);
    body.replaceChildren(...(l ? [...describe(l), entry(l)] : [t('none')]));
  }
  const rows = d.lessons.map((l) =>
    h('tr', { dataset: { lesson: l.id, state: lessonStateOf(l) } },
      h('td', {}, `${hhmm(l.starts)}–${hhmm(l.ends)}`),
      h('td', {}, l.subject ?? ''), h('td', {}, l.grade ?? ''), h('td', {}, modeLabel(l.mode)),
      h('td', { class: `state state-${lessonStateOf(l)}` }, t(`state_${lessonStateOf(l)}`)),
      h('td', {}, l.state === 'ended' ? '' : entry(l))));
  document.querySelector('#lessons tbody').replaceChildren(...rows);
};
try {
  me = await api('GET', '/api/me');
  await header(me);
  const refresh = async () => render(await api('GET', '/api/today'));
  await refresh();
  setInterval(() => refresh().catch(showError), 30000);
} catch (e) {
  showError(e);
}
