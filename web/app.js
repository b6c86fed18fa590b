// classrelay school pages: what /login, /today, /teach, /classroom and /admin share.
// Plain ES module, no build step; embedded in the server and served as /app.js.
//
// - i18n: Chinese by default, English with ?lang=en or the 中文/English switch (remembered
//   in localStorage). Static text carries data-i18n="key"; scripts call t('key').
// - api(): fetch with the caller's credentials: the login cookie for people, or a classroom
//   device token (Bearer) kept in localStorage after a kiosk opened /classroom?device=….
//   Errors come back as thrown problem objects { status, title, detail, type }.
// - LessonEvents: the lesson's server-sent events read with fetch (so a device token can be
//   sent as a header), resuming with Last-Event-ID after a drop.
// - Link: one WHIP or WHEP session that reconnects by itself (new join, new offer) when the
//   connection fails, with a visible state.

import { postOffer, deleteResource, waitForIceGathering, preferCodec, summarizeStats, iceConfig } from './whip.js';

export { preferCodec, summarizeStats };

const DICT = {
  zh: {
    app: '三个课堂',
    login: '登录',
    logout: '退出',
    username: '用户名',
    password: '密码',
    today: '今日课程',
    admin: '管理',
    now: '正在上课',
    next: '下一节',
    none: '暂无课程',
    enter: '进入课堂',
    teach: '开始授课',
    watch: '观课',
    mode_dedicated: '专递课堂',
    mode_master: '名师课堂',
    mode_sync: '同步课堂',
    state_scheduled: '未开始',
    state_open: '候课中',
    state_live: '上课中',
    state_ended: '已结束',
    link_idle: '未连接',
    link_connecting: '连接中',
    link_connected: '已连接',
    link_reconnecting: '重新连接中',
    link_failed: '连接失败',
    link_stopped: '已停止',
    camera: '摄像头',
    screen: '课件',
    share_screen: '共享课件屏幕',
    stop_screen: '停止共享',
    mute: '静音',
    unmute: '取消静音',
    end_lesson: '结束课程',
    end_confirm: '确定结束本节课吗？',
    hands: '举手',
    no_hands: '暂无举手',
    raise_hand: '举手',
    lower_hand: '放下手',
    grant: '允许发言',
    revoke: '收回发言',
    spotlight: '上大屏',
    spotlight_off: '撤下大屏',
    big_screen: '大屏',
    classes: '远端课堂',
    waiting_class: '等待该班接入',
    quality_good: '良好',
    quality_fair: '一般',
    quality_poor: '较差',
    speaking: '可以发言',
    hub: '主讲课堂',
    kiosk_waiting: '等待下一节课',
    lesson_ended: '本节课已结束',
    side_by_side: '并排显示',
    pip: '画中画',
    schools: '学校',
    classrooms: '教室',
    pairings: '结对',
    timetable: '课表',
    lessons_today: '今日课程',
    import_csv: '导入 CSV',
    export_csv: '导出 CSV',
    add: '添加',
    name: '名称',
    kind: '类型',
    region: '地区',
    school: '学校',
    subject: '学科',
    grade: '年级',
    time: '时间',
    teacher: '主讲教师',
    sites: '接收课堂',
    status: '状态',
    device_token: '设备令牌',
    issue_token: '生成设备令牌',
    kiosk_link: '教室一体机链接',
    imported: '已导入',
    week: '周',
    weekday_1: '周一', weekday_2: '周二', weekday_3: '周三', weekday_4: '周四',
    weekday_5: '周五', weekday_6: '周六', weekday_7: '周日',
    term: '学期',
    error: '错误',
    you: '本班',
    // ---- observation (observe.html) ----
    obs_title: '听评课',
    obs_lesson: '课程',
    obs_m_rubric: '评课量表',
    obs_m_st: 'S-T 分析',
    obs_m_fias: '弗兰德斯互动分析',
    obs_interval: '采样间隔（秒）',
    obs_start: '开始观察',
    obs_mine: '我的观察记录',
    obs_clock: '课堂时间',
    obs_pause: '暂停计时',
    obs_resume: '继续计时',
    obs_submit: '提交',
    obs_st_keys: '每到采样点按 T（教师行为）或 S（学生行为），Backspace 撤销上一次。',
    obs_tick: '请编码',
    obs_fias_keys: '每 3 秒按一个类别：1–9，0 表示类别 10（沉寂或混乱）。',
    obs_comments: '评论',
    obs_comment_hint: '在当前时间添加评论',
    obs_save_scores: '保存评分',
    obs_total: '总分',
    obs_item_comment: '评语（可选）',
    obs_n: '样本数 N',
    obs_n_t: '教师行为 N_T',
    obs_runs: '连数 g',
    obs_rt: '教师行为占有率 Rt',
    obs_ch: '行为转换率 Ch',
    obs_type: '教学模式',
    obs_type_practice: '练习型',
    obs_type_lecture: '讲授型',
    obs_type_dialogue: '对话型',
    obs_type_mixed: '混合型',
    obs_teacher_talk: '教师语言比率',
    obs_student_talk: '学生语言比率',
    obs_silence: '沉寂比率',
    obs_id_ratio: '间接/直接比率',
    obs_rid_ratio: '修正间接/直接比率',
    obs_steady: '稳定状态格',
    obs_state_draft: '草稿',
    obs_state_submitted: '已提交',
    obs_state_reviewed: '已复核',
    // Recording (issue 20).
    recording_on: '录制中',
    record_start: '开始录制',
    record_stop: '停止录制',
    recording_failed: '录制已停止（写入失败）',
    // Spreadsheet import (issue 22 item 2).
    import_tab: '导入表格',
    import_what: '导入内容',
    import_file: '文件',
    import_hint: '支持 Excel 工作簿（.xlsx）和 CSV（UTF-8、带 BOM 的 UTF-8 或 GBK）；表头可用中文（见模板）。整份文件全部导入或全部不导入。',
    import_go: '导入',
    import_check: '仅检查（不导入）',
    import_no_file: '请先选择文件',
    import_template_csv: '下载 CSV 模板',
    import_template_xlsx: '下载 Excel 模板',
    import_done: '已导入 {n} 行（共 {rows} 行）',
    import_checked: '检查通过：可导入 {n} 行（共 {rows} 行），未写入',
    import_skipped: '{n} 行已存在，已跳过',
    import_failed: '有 {n} 处问题，未导入任何数据',
    import_row: '行',
    import_column: '列',
    import_problem: '问题',
    import_password: '初始密码（仅显示一次）',
    sheet_schools: '学校',
    sheet_classrooms: '教室',
    sheet_teachers: '教师',
    sheet_users: '用户',
    sheet_pairings: '结对',
    sheet_timetable: '课表',
  },
  en: {
    app: 'Three Classrooms',
    login: 'Log in',
    logout: 'Log out',
    username: 'Username',
    password: 'Password',
    today: 'Today',
    admin: 'Admin',
    now: 'Now',
    next: 'Next',
    none: 'No lessons',
    enter: 'Join',
    teach: 'Teach',
    watch: 'Observe',
    mode_dedicated: 'Dedicated delivery',
    mode_master: 'Master-teacher class',
    mode_sync: 'Synchronous class',
    state_scheduled: 'Scheduled',
    state_open: 'Open',
    state_live: 'Live',
    state_ended: 'Ended',
    link_idle: 'Not connected',
    link_connecting: 'Connecting',
    link_connected: 'Connected',
    link_reconnecting: 'Reconnecting',
    link_failed: 'Failed',
    link_stopped: 'Stopped',
    camera: 'Camera',
    screen: 'Courseware',
    share_screen: 'Share courseware screen',
    stop_screen: 'Stop sharing',
    mute: 'Mute',
    unmute: 'Unmute',
    end_lesson: 'End lesson',
    end_confirm: 'End this lesson now?',
    hands: 'Raised hands',
    no_hands: 'No raised hands',
    raise_hand: 'Raise hand',
    lower_hand: 'Lower hand',
    grant: 'Let speak',
    revoke: 'Stop speaking',
    spotlight: 'Big screen',
    spotlight_off: 'Off big screen',
    big_screen: 'Big screen',
    classes: 'Remote classes',
    waiting_class: 'Waiting for this class',
    quality_good: 'good',
    quality_fair: 'fair',
    quality_poor: 'poor',
    speaking: 'May speak',
    hub: 'Hub classroom',
    kiosk_waiting: 'Waiting for the next lesson',
    lesson_ended: 'This lesson has ended',
    side_by_side: 'Side by side',
    pip: 'Picture in picture',
    schools: 'Schools',
    classrooms: 'Classrooms',
    pairings: 'Pairings',
    timetable: 'Timetable',
    lessons_today: "Today's lessons",
    import_csv: 'Import CSV',
    export_csv: 'Export CSV',
    add: 'Add',
    name: 'Name',
    kind: 'Kind',
    region: 'Region',
    school: 'School',
    subject: 'Subject',
    grade: 'Grade',
    time: 'Time',
    teacher: 'Hub teacher',
    sites: 'Receiving classes',
    status: 'Status',
    device_token: 'Device token',
    issue_token: 'Issue device token',
    kiosk_link: 'Classroom kiosk link',
    imported: 'Imported',
    week: 'Week',
    weekday_1: 'Mon', weekday_2: 'Tue', weekday_3: 'Wed', weekday_4: 'Thu',
    weekday_5: 'Fri', weekday_6: 'Sat', weekday_7: 'Sun',
    term: 'Term',
    error: 'Error',
    you: 'This class',
    // ---- observation (observe.html) ----
    obs_title: 'Lesson observation',
    obs_lesson: 'Lesson',
    obs_m_rubric: 'Rubric',
    obs_m_st: 'S-T analysis',
    obs_m_fias: 'Flanders interaction analysis',
    obs_interval: 'Sampling interval (s)',
    obs_start: 'Start observing',
    obs_mine: 'My observations',
    obs_clock: 'Lesson time',
    obs_pause: 'Pause clock',
    obs_resume: 'Resume clock',
    obs_submit: 'Submit',
    obs_st_keys: 'At each sample press T (teacher behaviour) or S (student behaviour); Backspace undoes the last.',
    obs_tick: 'Code now',
    obs_fias_keys: 'Every 3 s press a category: 1–9, and 0 for category 10 (silence or confusion).',
    obs_comments: 'Comments',
    obs_comment_hint: 'Comment at the current time',
    obs_save_scores: 'Save scores',
    obs_total: 'Total',
    obs_item_comment: 'Remark (optional)',
    obs_n: 'Samples N',
    obs_n_t: 'Teacher N_T',
    obs_runs: 'Runs g',
    obs_rt: 'Teacher ratio Rt',
    obs_ch: 'Change ratio Ch',
    obs_type: 'Lesson type',
    obs_type_practice: 'Practice',
    obs_type_lecture: 'Lecture',
    obs_type_dialogue: 'Dialogue',
    obs_type_mixed: 'Mixed',
    obs_teacher_talk: 'Teacher talk',
    obs_student_talk: 'Student talk',
    obs_silence: 'Silence',
    obs_id_ratio: 'Indirect/direct',
    obs_rid_ratio: 'Revised indirect/direct',
    obs_steady: 'Steady-state cells',
    obs_state_draft: 'Draft',
    obs_state_submitted: 'Submitted',
    obs_state_reviewed: 'Reviewed',
    // Recording (issue 20).
    recording_on: 'Recording',
    record_start: 'Start recording',
    record_stop: 'Stop recording',
    recording_failed: 'Recording stopped (write failed)',
    // Spreadsheet import (issue 22 item 2).
    import_tab: 'Import',
    import_what: 'Import into',
    import_file: 'File',
    import_hint: 'Excel workbooks (.xlsx) and CSV (UTF-8, UTF-8 with BOM, or GBK); headers in Chinese or English (see the templates). A file is imported whole or not at all.',
    import_go: 'Import',
    import_check: 'Check only (store nothing)',
    import_no_file: 'Choose a file first',
    import_template_csv: 'CSV template',
    import_template_xlsx: 'Excel template',
    import_done: 'Imported {n} rows (of {rows})',
    import_checked: 'Check passed: {n} rows (of {rows}) would be imported; nothing stored',
    import_skipped: '{n} rows already there, skipped',
    import_failed: '{n} problems; nothing was imported',
    import_row: 'Row',
    import_column: 'Column',
    import_problem: 'Problem',
    import_password: 'First password (shown once)',
    sheet_schools: 'Schools',
    sheet_classrooms: 'Classrooms',
    sheet_teachers: 'Teachers',
    sheet_users: 'Users',
    sheet_pairings: 'Pairings',
    sheet_timetable: 'Timetable',
  },
};

/** The page language: ?lang=, then the remembered choice, then Chinese. */
export function lang() {
  const q = new URLSearchParams(window.location.search).get('lang');
  if (q === 'en' || q === 'zh') {
    localStorage.setItem('classrelay.lang', q);
    return q;
  }
  return localStorage.getItem('classrelay.lang') === 'en' ? 'en' : 'zh';
}

/** Translates `key` (falls back to the key itself, so a missing entry is visible). */
export function t(key) {
  return DICT[lang()][key] ?? DICT.zh[key] ?? key;
}

/** Fills every [data-i18n] element and adds the language switch to #lang if present. */
export function translatePage() {
  document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-i18n]').forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  const sw = document.getElementById('lang');
  if (sw && !sw.dataset.ready) {
    sw.dataset.ready = '1';
    sw.textContent = lang() === 'en' ? '中文' : 'English';
    sw.addEventListener('click', () => {
      localStorage.setItem('classrelay.lang', lang() === 'en' ? 'zh' : 'en');
      const u = new URL(window.location.href);
      u.searchParams.delete('lang');
      window.location.replace(u.toString());
    });
  }
}

/** The device token this browser holds (kiosk), taking a new one from ?device=. */
export function deviceToken() {
  const u = new URL(window.location.href);
  const fromUrl = u.searchParams.get('device');
  if (fromUrl) {
    localStorage.setItem('classrelay.device', fromUrl);
    // Keep the secret out of the address bar and history.
    u.searchParams.delete('device');
    window.history.replaceState(null, '', u.toString());
    return fromUrl;
  }
  return localStorage.getItem('classrelay.device');
}

/** A thrown value as a { status, title, detail, type } problem. */
export function asProblem(e) {
  if (e && typeof e === 'object' && 'title' in e) return e;
  return { status: null, title: e?.name ?? 'Error', detail: String(e?.message ?? e), type: null };
}

/**
 * Calls the API. `body` objects are sent as JSON, strings as text/csv, Blobs as their bytes
 * with their type. Resolves to the parsed
 * JSON (or text for CSV, null for 204); rejects with a problem object. A 401 on a page that
 * needs a login sends the browser to /login (unless `noRedirect`).
 */
export async function api(method, path, body = undefined, { noRedirect = false } = {}) {
  const headers = {};
  const dev = deviceToken();
  if (dev) headers.Authorization = `Bearer ${dev}`;
  let payload;
  if (typeof body === 'string') {
    headers['Content-Type'] = 'text/csv';
    payload = body;
  } else if (body instanceof Blob) {
    // A file as its bytes (a GBK CSV must not be decoded as UTF-8 here), with its type.
    headers['Content-Type'] = body.type || 'text/csv';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw { status: null, title: 'network error', detail: String(e?.message ?? e), type: null };
  }
  const text = await resp.text();
  if (!resp.ok) {
    let p = null;
    try {
      p = JSON.parse(text);
    } catch {
      p = null;
    }
    if (resp.status === 401 && !noRedirect && !dev) {
      const next = encodeURIComponent(window.location.pathname + window.location.search);
      window.location.assign(`/login?next=${next}`);
    }
    throw {
      status: resp.status,
      title: p?.title ?? resp.statusText,
      detail: p?.detail ?? null,
      type: p?.type ?? null,
      errors: p?.errors ?? null,
    };
  }
  if (resp.status === 204 || text === '') return null;
  const ct = resp.headers.get('Content-Type') ?? '';
  return ct.includes('json') ? JSON.parse(text) : text;
}

/** Shows a problem in the page's #error box. */
export function showError(p) {
  const el = document.getElementById('error');
  if (!el) return;
  if (!p) {
    el.hidden = true;
    return;
  }
  const status = p.status ? ` [HTTP ${p.status}]` : '';
  el.textContent = `${t('error')}${status}: ${p.title ?? ''}${p.detail ? ` — ${p.detail}` : ''}`;
  el.hidden = false;
}

/** Creates an element: h('div', { class: 'x', onclick }, child, 'text'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** "08:00" from an RFC 3339 local time string as the API gives it. */
export function hhmm(rfc3339) {
  return (rfc3339 ?? '').slice(11, 16);
}

/**
 * The events of a lesson, read from `/api/lessons/{id}/events` with fetch. Calls
 * `onEvent({ kind, seq, at, data })` for each; resumes after a drop with Last-Event-ID, so
 * nothing is missed (a `resync` event carries the full picture when too much was).
 */
export class LessonEvents {
  constructor(lessonId, onEvent, log = () => {}) {
    this.url = `/api/lessons/${lessonId}/events`;
    this.onEvent = onEvent;
    this.log = log;
    this.last = null;
    this.closed = false;
    this.abort = null;
    this.run();
  }

  async run() {
    let backoff = 500;
    while (!this.closed) {
      try {
        this.abort = new AbortController();
        const headers = { Accept: 'text/event-stream' };
        const dev = deviceToken();
        if (dev) headers.Authorization = `Bearer ${dev}`;
        if (this.last != null) headers['Last-Event-ID'] = String(this.last);
        const resp = await fetch(this.url, { headers, signal: this.abort.signal, credentials: 'same-origin' });
        if (resp.status === 401 || resp.status === 403 || resp.status === 404) {
          this.log(`events: HTTP ${resp.status}, giving up`);
          this.onEvent({ kind: 'events-refused', data: { status: resp.status } });
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        backoff = 500;
        await this.read(resp.body);
      } catch (e) {
        if (this.closed) return;
        this.log(`events: ${e}; retrying in ${backoff} ms`);
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 8000);
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let kind = 'message';
        let id = null;
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'event') kind = val;
          else if (field === 'id') id = val;
          else if (field === 'data') data.push(val);
        }
        if (id != null) this.last = id;
        if (data.length === 0) continue;
        let parsed;
        try {
          parsed = JSON.parse(data.join('\n'));
        } catch {
          parsed = { data: data.join('\n') };
        }
        this.onEvent({ kind, seq: parsed.seq ?? null, at: parsed.at ?? null, data: parsed.data ?? parsed });
      }
    }
  }

  close() {
    this.closed = true;
    if (this.abort) this.abort.abort();
  }
}

/** Problems that a retry cannot fix: the link stops and shows why. */
function permanent(p) {
  return p.status === 400 || p.status === 401 || p.status === 403 || p.status === 404 || p.status === 409 || p.status === 406;
}

/**
 * One WHIP or WHEP session that keeps itself up.
 *
 *   new Link({ name, kind: 'whip'|'whep', session: async () => ({ url, token }),
 *              setup(pc), onTrack(ev), onState(state, link), log })
 *
 * `session()` is asked before every (re)connect, so a page can join the lesson again for a
 * fresh token. `setup(pc)` adds the transceivers. States: connecting, connected,
 * reconnecting, failed (a refusal no retry fixes; `problem` says why), stopped.
 */
export class Link {
  constructor(opts) {
    this.opts = opts;
    this.name = opts.name;
    this.pc = null;
    this.resource = null;
    this.token = null;
    this.state = 'idle';
    this.problem = null;
    this.attempts = 0;
    this.timer = null;
    this.stopped = false;
    this.connect();
  }

  log(msg) {
    (this.opts.log ?? (() => {}))(`[${this.name}] ${msg}`);
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.log(`state ${s}`);
    if (this.opts.onState) this.opts.onState(s, this);
  }

  async connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.setState(this.attempts === 0 ? 'connecting' : 'reconnecting');
    this.attempts += 1;
    let pc = null;
    try {
      const { url, token } = await this.opts.session();
      this.token = token;
      // ICE servers (a TURN credential minted for this token) before the offer is made;
      // `&relay=1` on the page forces relayed candidates (diagnostics, tests).
      const relay = new URLSearchParams(window.location.search).get('relay') === '1';
      pc = new RTCPeerConnection(await iceConfig(url, token, { relay, log: (m) => this.log(m) }));
      if (this.stopped) {
        pc.close();
        return;
      }
      this.pc = pc;
      await this.opts.setup(pc);
      if (this.opts.onTrack) pc.addEventListener('track', (ev) => this.opts.onTrack(ev, this));
      pc.addEventListener('connectionstatechange', () => this.watch(pc));
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc);
      if (this.stopped || pc !== this.pc) return;
      const { location, answer } = await postOffer(url, token, pc.localDescription.sdp);
      this.resource = location;
      if (this.stopped || pc !== this.pc) {
        deleteResource(location, token);
        return;
      }
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      this.problem = null;
      this.log(`negotiated ${location}`);
    } catch (e) {
      const p = asProblem(e);
      this.problem = p;
      this.log(`connect failed: ${p.status ?? ''} ${p.title} ${p.detail ?? ''}`);
      if (pc) pc.close();
      if (permanent(p)) {
        this.setState('failed');
        return;
      }
      this.retry();
    }
  }

  watch(pc) {
    if (pc !== this.pc || this.stopped) return;
    const s = pc.connectionState;
    if (s === 'connected') {
      this.attempts = 0;
      this.setState('connected');
      clearTimeout(this.timer);
    } else if (s === 'failed') {
      this.retry();
    } else if (s === 'disconnected') {
      // ICE often recovers on its own within a few seconds; give it that long.
      this.setState('reconnecting');
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState !== 'connected') this.retry();
      }, 4000);
    }
  }

  retry() {
    if (this.stopped) return;
    this.setState('reconnecting');
    const old = this.pc;
    const oldResource = this.resource;
    this.resource = null;
    if (old) old.close();
    if (oldResource) deleteResource(oldResource, this.token);
    const delay = Math.min(500 * 2 ** Math.min(this.attempts, 5), 10000);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const res = this.resource;
    this.resource = null;
    if (this.pc) this.pc.close();
    this.setState('stopped');
    if (res) await deleteResource(res, this.token);
  }

  async stats() {
    return statsOf(this.pc, this.state);
  }
}

/**
 * summarizeStats() of a pc whose transceivers were added in the order audio, camera, screen
 * (every page here does), so each entry carries its role.
 */
export function statsOf(pc, state = null) {
  if (!pc) return Promise.resolve(null);
  const ts = pc.getTransceivers();
  const mids = { audio: ts[0]?.mid ?? null, camera: ts[1]?.mid ?? null, screen: ts[2]?.mid ?? null };
  return summarizeStats(pc, { state, mids });
}

/** A status pill element that follows a Link's state. */
export function linkBadge(state) {
  return h('span', { class: `badge link-${state}`, dataset: { state } }, t(`link_${state}`));
}

/** Lesson mode label. */
export function modeLabel(mode) {
  return t(`mode_${mode}`);
}

/** Sets up the header: title, user, language switch, logout. */
export async function header(me) {
  translatePage();
  const who = document.getElementById('who');
  if (who && me) {
    who.textContent = me.kind === 'device' ? me.label : `${me.display_name || me.username} · ${me.role}`;
  }
  const out = document.getElementById('logout');
  if (out) {
    out.hidden = !me || me.kind === 'device';
    out.addEventListener('click', async () => {
      await api('POST', '/api/logout', undefined, { noRedirect: true }).catch(() => {});
      window.location.assign('/login');
    });
  }
  const adm = document.getElementById('adminLink');
  if (adm) adm.hidden = !me || me.role !== 'admin';
}
