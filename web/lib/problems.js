//! The message table for server problems: each problem `type` (urn:classrelay:problem:<kind>) has a zh and an en sentence, so a page shows a refusal in its own language; it must never show the server's English `detail` on a Chinese page, nor touch the DOM.
// @ts-check

import { fill } from './i18n.js';
import { humanizeTimes, dateTime } from './timefmt.js';

/** @typedef {'zh' | 'en'} Lang */
/**
 * @typedef {{ status?: number | null, title?: string | null, detail?: string | null,
 *   type?: string | null, [member: string]: any }} Problem
 */

/** Prefix of every problem `type` the server sends. */
export const PROBLEM_BASE = 'urn:classrelay:problem:';

/**
 * By problem kind: [Chinese, English]. `{name}` is filled from the problem's extra members
 * (times among them shown as the school's wall clock). Every kind the server can send is here:
 * `tests/page_scripts.rs` scans `src/` for them.
 * @type {Record<string, [string, string]>}
 */
export const MESSAGES = {
  'bad-encoding': ['文件编码无法识别，请另存为“CSV UTF-8”后重试', 'The file’s encoding was not recognised; save it as “CSV UTF-8” and try again'],
  'bad-json': ['提交的数据格式不正确', 'The request body is not valid JSON of the expected shape'],
  'bad-query': ['查询参数不正确', 'A query parameter is wrong'],
  'bad-rid': ['没有该画质层', 'No such video layer'],
  'bad-room-name': ['房间名称不合法', 'The room name is not valid'],
  'bad-sdp': ['媒体协商数据无效', 'The media offer is not valid'],
  'bad-sdpfrag': ['网络协商数据无效', 'The ICE fragment is not valid'],
  'bad-source': ['观看的画面来源无效', 'The requested picture source is not valid'],
  'body-too-large': ['提交的内容过大', 'The upload is too large'],
  'cross-origin': ['请求来自其他网站，已拒绝', 'The request came from another site and was refused'],
  'csv-rejected': ['文件中有错误，未导入任何一行（见下表）', 'The file has errors; no row was imported (see the table below)'],
  'csv-too-many-rows': ['文件行数过多，请拆分后导入', 'The file has too many rows; split it and import the parts'],
  duplicate: ['已存在相同的记录（编号或名称重复）', 'A record with the same code or name already exists'],
  'etag-mismatch': ['会话已变化，请重新连接', 'The session changed; reconnect'],
  'grant-missing': ['没有此操作的权限（例如尚未获准发言）', 'The token does not allow this (for example, speaking was not granted)'],
  'ice-restart-failed': ['网络重连失败，正在重新加入', 'The network restart failed; joining again'],
  'if-match-required': ['请求缺少版本标记', 'The request needs an If-Match header'],
  'incompatible-codec': ['浏览器不支持所需的音视频编码', 'The browser offers no codec this room can use'],
  internal: ['服务器内部错误，请联系管理员查看日志', 'Internal server error; ask the administrator to check the log'],
  'invalid-field': ['填写的内容有误，请检查后重试', 'A field is not valid; check the form and try again'],
  'lesson-conflict': ['时间冲突：该教师或教室在这段时间已有课', 'Clash: the teacher or a classroom already has a lesson at that time'],
  'lesson-ended': ['本节课已结束', 'This lesson has ended'],
  'lesson-cancelled': ['本节课已停课', 'This lesson is cancelled'],
  'last-admin': ['您是该范围内唯一的管理员，请先设置另一位管理员', 'You are the last administrator over your scope: make another administrator first'],
  'lesson-started': ['课程已开始或已结束，只能在上课前取消', 'The lesson has already started or ended; only a lesson before its bell can be cancelled'],
  'lesson-not-open': ['本节课尚未开放，{opens_at} 开放', 'This lesson is not open yet; it opens at {opens_at}'],
  'lesson-not-running': ['本节课未在进行中', 'This lesson is not running'],
  'lesson-not-scheduled': ['只能修改尚未开始的课程', 'Only a lesson that has not started can be changed'],
  'login-failed': ['用户名或密码错误，或账号已停用', 'Wrong username or password, or the account is disabled'],
  'login-required': ['请先登录', 'Please log in'],
  'method-not-allowed': ['不支持该操作', 'This operation is not supported here'],
  'metrics-token': ['查看监控数据需要令牌', 'Reading metrics needs the metrics token'],
  'no-usable-media': ['没有可用的音视频（请检查摄像头和麦克风）', 'No usable audio or video (check the camera and microphone)'],
  'not-found': ['找不到该内容', 'Not found'],
  'not-in-lesson': ['你不在这节课中', 'You are not part of this lesson'],
  'not-session-owner': ['这不是你的连接', 'This session is not yours'],
  'not-your-lesson': ['这不是你主讲的课程', 'You are not this lesson’s teacher'],
  'not-your-observation': ['这不是你的观课记录', 'This observation is not yours'],
  'observation-draft': ['观课记录尚未提交', 'The observation has not been submitted yet'],
  'observation-submitted': ['观课记录已提交，不能再修改', 'The observation was submitted and can no longer be changed'],
  'out-of-scope': ['超出你的管理范围', 'This is outside the part of the organisation you manage'],
  overloaded: ['服务器繁忙，请稍后再试', 'The server is busy; try again shortly'],
  'recording-unavailable': ['录制功能暂不可用', 'Recording is not available'],
  reference: ['该记录仍被使用，或引用的记录不存在', 'The record is still in use, or what it refers to does not exist'],
  'request-timeout': ['请求超时，请重试', 'The request took too long; try again'],
  'role-forbidden': ['你的角色不能进行此操作', 'Your role may not do this'],
  'self-delete': ['不能删除自己的账号', 'You cannot delete your own account'],
  'room-full': ['课堂人数已满', 'The room is full'],
  'session-ended': ['连接已结束', 'The session has ended'],
  'session-not-found': ['连接已不存在', 'The session no longer exists'],
  'site-not-paired': ['接收教室的学校与主讲学校没有结对', 'A receiving classroom’s school is not paired with the hub school'],
  'speak-not-granted': ['尚未获准发言', 'Speaking has not been granted'],
  'stale-version': ['内容已被他人修改，请刷新后重试', 'Someone else changed this; reload and try again'],
  'store-unavailable': ['数据库暂时不可用，请稍后再试', 'The database is unavailable; try again shortly'],
  'timetable-conflict': ['课表冲突：该教师或教室在这段时间已有课', 'Timetable clash: the teacher or a classroom already has a lesson at that time'],
  'token-expired': ['登录或设备令牌已过期', 'The login or device token has expired'],
  'token-invalid': ['令牌无效', 'The token is not valid'],
  'token-missing': ['缺少登录或设备令牌', 'A login or device token is needed'],
  'token-revoked': ['该设备已被停用，请联系管理员重新发放链接', 'This device was revoked; ask the administrator for a new link'],
  'token-wrong-room': ['令牌不属于这个课堂', 'The token is for another room'],
  'too-many-codes': ['编码过多', 'Too many codes'],
  'too-many-lessons': ['课程数量超过上限', 'Too many lessons'],
  'too-many-logins': ['登录尝试过多，请稍后再试', 'Too many login attempts; wait and try again'],
  'too-many-sessions': ['连接数超过上限', 'Too many sessions'],
  'unsupported-media-type': ['不支持的文件或数据类型', 'This kind of file or body is not accepted here'],
  'wrong-mode': ['当前课堂模式不支持此操作', 'This lesson’s mode does not allow this'],
  // Not from the server: what the page says when the request never got an answer.
  network: ['网络连接失败，请检查网络', 'The network request failed; check the connection'],
  // inspect2: sampling inspection (抽检) and a blinded review's media
  'not-your-review': ['这条评审分配给了其他评审专家', 'This review is assigned to another reviewer'],
  'round-drawn': ['本轮已经抽签，不能再更改', 'The round is drawn already and cannot change'],
  'round-without-reviewers': ['本轮还没有评审专家，请先设置评审名单', 'The round has no reviewers: set its pool first'],
  'sample-appealed': ['该样本已经申诉过', 'This sample was appealed already'],
  'sample-pending': ['该样本尚未评定，全部评审完成后才能申诉', 'The sample is not decided yet: appeal once every review is graded'],
  'source-unavailable': ['能力点提交暂不能抽检，请抽取听评课记录', 'Ability-point submissions cannot be drawn yet: draw observations'],
  'no-recording': ['该课没有可用的录像', 'The lesson has no usable recording'],
  'range-not-satisfiable': ['请求的录像片段超出文件范围', 'The requested part of the file lies outside it'],
  // Recordings, exports, teacher records, the S-T draft and spreadsheets (session 16 merge)
  'recording-not-ready': ['录像还在处理中，请稍后再试', 'The recording is still being processed; try again shortly'],
  'recording-deleted': ['该录像已按保存期限删除', 'This recording was deleted when its retention period ended'],
  'recording-unreadable': ['录像文件无法读取', 'The recording\'s files cannot be read'],
  'no-teacher-audio': ['录像中没有授课教师的声音，无法生成草稿', 'The recording has no audio from the hub teacher, so no draft can be made'],
  'evidence-graded': ['该证据已评定，不能再修改', 'This evidence is graded already and cannot change'],
  'point-drawn': ['该能力点已被抽检抽中，证据和评定不能再修改', 'This ability point was drawn for inspection: its evidence and grades no longer change'],
  'file-too-large': ['文件太大', 'The file is too large'],
  'unsupported-file-type': ['不支持这种文件类型', 'This type of file is not accepted'],
  'bad-workbook': ['Excel 文件已损坏或无法读取，请重新保存为 .xlsx 后再试', 'The Excel file is damaged or unreadable; save it again as .xlsx and retry'],
  'unsupported-spreadsheet': ['不支持这种表格格式，请另存为 .xlsx 或 CSV', 'This spreadsheet format is not accepted; save it as .xlsx or CSV'],
  'exports-unavailable': ['此服务器不支持导出视频（需要带 GStreamer 的版本）', 'This server cannot export video (it needs a build with GStreamer)'],
  'bad-preset': ['没有这种导出规格', 'There is no such export preset'],
  'export-failed': ['导出失败', 'The export failed'],
  'no-such-recording': ['没有这条录像', 'There is no such recording'],
};

/** By HTTP status, for a kind the table does not know: [Chinese, English]. */
const BY_STATUS = /** @type {Record<number, [string, string]>} */ ({
  400: ['请求不正确', 'The request is not valid'],
  401: ['需要登录或有效的令牌', 'A login or a valid token is needed'],
  403: ['没有权限', 'Not allowed'],
  404: ['找不到该内容', 'Not found'],
  409: ['与现有内容冲突', 'Conflicts with what is already there'],
  413: ['提交的内容过大', 'Too large'],
  415: ['不支持的数据类型', 'Unsupported type'],
  422: ['填写的内容有误', 'A value is not valid'],
  429: ['操作过于频繁，请稍后再试', 'Too many requests; wait and try again'],
  503: ['服务暂时不可用，请稍后再试', 'The service is unavailable; try again shortly'],
});

/**
 * The kind of a problem (`not-found` from `urn:classrelay:problem:not-found`), or null.
 * @param {Problem | null | undefined} p
 * @returns {string | null}
 */
export function problemKind(p) {
  const ty = p?.type;
  if (typeof ty !== 'string') return null;
  return ty.startsWith(PROBLEM_BASE) ? ty.slice(PROBLEM_BASE.length) : null;
}

/**
 * What a page shows for a problem, in `lang`: the table's sentence for its kind (filled from
 * its members), else a sentence for its status, else the generic error word. The server's
 * `detail` is English: an English page adds it after the sentence (times made readable); a
 * Chinese page never shows it.
 * @param {Problem | null | undefined} p
 * @param {Lang} lang
 * @returns {string}
 */
export function problemText(p, lang) {
  const i = lang === 'en' ? 1 : 0;
  // `api()` throws `{ status: null, title: 'network error' }` when no answer came at all.
  const kind = problemKind(p) ?? (p?.status == null && p?.title === 'network error' ? 'network' : null);
  const row = (kind && MESSAGES[kind]) ?? (p?.status ? BY_STATUS[p.status] : null);
  /** @type {Record<string, string>} */
  const vars = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    if (typeof v === 'string') vars[k] = dateTime(v, lang) || v;
    else if (typeof v === 'number') vars[k] = String(v);
  }
  let text = row ? fill(row[i], vars) : (lang === 'en' ? 'Something went wrong' : '操作失败');
  // A placeholder the problem did not fill: drop the clause rather than show `{x}`.
  text = text.replace(/[，,;；]?[^，,;；]*\{[a-z_]+\}[^，,;；]*/g, '');
  if (lang === 'en' && p?.detail && !row?.[1].includes(p.detail)) text += ` (${humanizeTimes(p.detail, 'en')})`;
  return text;
}
