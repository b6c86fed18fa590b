// @ts-check
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
import { pickLang, lookup, fill, merge } from './lib/i18n.js';
import { SseParser, lessonEvent } from './lib/sse.js';
import { backoff, permanent, eventsRefused } from './lib/reconnect.js';
import { hhmm as wallHhmm, dateLabel, dateTime } from './lib/timefmt.js';
import { problemText } from './lib/problems.js';
import { WORDS } from './lib/words.js';
import { pageStats, connId, liveLink } from './lib/linkstats.js';

export { preferCodec, summarizeStats };

export const PAGES_DICT = {
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
    // inspect2: the FIAS 3 s prompt
    obs_fias_tick: '请按类别',
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
    // Teacher records (issue 21 item 5).
    rec_title: '教师数字档案',
    rec_term: '学期',
    rec_csv: '导出 CSV',
    rec_print: '打印',
    rec_teaching: '授课',
    rec_lessons: '课数',
    rec_minutes: '分钟',
    rec_modes: '课堂类型',
    rec_paired: '结对学校',
    rec_upcoming: '本学期尚未上的课',
    rec_lesson_list: '课程清单',
    rec_recordings: '课堂录像',
    rec_observations: '评课结果',
    rec_chart_rubric: '量表总分趋势',
    rec_chart_st: 'S-T 教学模式',
    rec_chart_fias: 'FIAS 言语比率',
    rec_observation: '观察',
    rec_abilities: '微能力点',
    rec_point: '能力点',
    rec_recording: '录像',
    rec_in: '入点（秒）',
    rec_out: '出点（秒）',
    rec_note: '说明',
    rec_file: '文件',
    rec_add_evidence: '提交证据',
    rec_role_hub: '主讲教师',
    rec_role_assisting: '辅导教师',
    rec_mode_delivery: '专递课堂',
    rec_mode_master: '名师课堂',
    rec_mode_sync: '同步课堂',
    rec_none: '无',
    rec_exports: '晒课导出',
    rec_exp_showcase: '晒课视频',
    rec_exp_premium: '精品课视频',
    rec_exp_composite: '一屏三画面',
    rec_exp_queued: '排队中',
    rec_exp_running: '导出中',
    rec_exp_done: '已完成',
    rec_exp_failed: '失败',
    rec_mean_rubric: '量表平均分',
    rec_mean_teacher_talk: 'FIAS 教师语言比率均值',
    rec_grade_excellent: '优秀',
    rec_grade_pass: '合格',
    rec_grade_fail: '不合格',
    rec_status_pending: '待评',
    rec_status_no_evidence: '无证据',
    rec_status_graded: '已评',
    rec_min_points: '每学期至少选择能力点',
    rec_picked: '已选',
    rec_met: '已达要求',
    rec_not_met: '未达要求',
    rec_no_teacher: '请指定教师（?teacher=编号）',
    // Inspections in the record and ability-point rounds (inspap: issue 21 item 6).
    rec_inspection: '抽检',
    rec_not_drawn: '未抽中',
    rec_ins_reviewing: '评审中',
    rec_ins_appealed: '已申诉',
    rec_ins_appeal: '申诉',
    rec_ins_reason: '申诉理由',
    ins_source: '抽检对象',
    ins_source_observation: '课堂观察',
    ins_source_ability_point: '微能力点',
    ins_term: '学期',
    ins_item: '证据',
    ins_pool: '评审专家库',
    ins_reviewer: '评审人',
    ins_expert: '专家',
    ins_add_reviewer: '添加评审人',
    ins_user_id: '用户编号',
    ins_add: '添加',
    ins_remove: '移除',
    ins_pool_save: '保存评审专家库',
    ins_pool_saved: '已保存',
    ins_pool_unsaved: '未保存',
    rec_rec_recording: '录制中',
    rec_rec_stopped: '已结束',
    rec_rec_failed: '录制失败',
    rec_proc_processing: '处理中',
    rec_proc_ready: '可播放',
    rec_proc_failed: '处理失败',
    // Sampling inspection (抽检, issue 21 item 6: /inspect).
    ins_title: '抽检',
    ins_manage: '管理抽检轮次',
    ins_rounds: '抽检轮次',
    ins_round: '抽检轮次',
    ins_name: '名称',
    ins_level: '层级',
    ins_level_county: '县级',
    ins_level_city: '市级',
    ins_level_province: '省级',
    ins_region: '地区',
    ins_seed: '随机种子',
    ins_seed_auto: '自动',
    ins_create: '新建轮次',
    ins_ratio: '比例',
    ins_state: '状态',
    ins_state_open: '待抽取',
    ins_state_drawn: '已抽取',
    ins_population: '可抽总数',
    ins_draw: '抽取',
    ins_progress: '进度',
    ins_units: '各单位合格率',
    ins_unit: '单位',
    ins_samples: '样本',
    ins_decided: '已定',
    ins_passed: '合格',
    ins_pass_rate: '合格率',
    ins_sample_list: '样本',
    ins_pseudonym: '化名',
    ins_stratum: '类别',
    ins_reviews: '评审',
    ins_outcome: '结果',
    ins_back: '返回轮次列表',
    ins_my_reviews: '我的评审',
    ins_blind_note: '双盲评审：只显示化名与类别，不显示教师、学校或地区。',
    ins_reason: '来源',
    ins_evidence: '观察数据',
    ins_score: '评分',
    ins_grade: '评分',
    ins_saved: '已保存',
    ins_nobody: '无可分配评审',
    ins_p_samples: '样本数',
    ins_p_reviews: '评审数',
    ins_p_graded: '已评',
    ins_p_unassigned: '无人可评',
    ins_p_disputes: '争议复检',
    ins_p_appeals: '申诉',
    ins_p_passed: '合格',
    ins_p_failed: '不合格',
    ins_p_pending: '待定',
    ins_reason_draw: '抽取',
    ins_reason_dispute: '争议复检',
    ins_reason_appeal: '申诉复检',
    ins_outcome_pending: '待定',
    ins_outcome_passed: '合格',
    ins_outcome_failed: '不合格',
    ins_disputed: '有争议',
    ins_stage_primary: '小学',
    ins_stage_junior: '初中',
    ins_stage_senior: '高中',
    ins_stage_other: '其他学段',
    ins_kind_hub: '主讲校',
    ins_kind_partner: '接收校',
    ins_area_urban: '城区',
    ins_area_rural: '乡村',
    ins_area_unknown: '城乡未填',
    // The automatic S-T draft (issue 21 item 3).
    obs_draft: '自动 S-T 草稿',
    obs_draft_hint: '根据课堂录像中授课教师音轨的语音活动，在每个采样点提议 T（教师在讲）或 S（其他），供您核对；与您的编码不一致处以红色标出。',
    obs_draft_make: '由录像生成草稿',
    obs_draft_adopt: '采用草稿作为我的编码',
    obs_draft_none: '尚未生成草稿。',
    obs_draft_from: '来自录像',
    obs_draft_agree: '与您的编码一致',
    obs_draft_differs: '处不一致',
    obs_draft_at: '时间',
    obs_draft_row: '草稿',
    obs_draft_mine: '我的编码',
    obs_draft_teacher_voice: '教师语音占比（‰）',
    // The draft as a background job (recgap).
    obs_draft_pending: '草稿排队等待生成…',
    obs_draft_running: '正在分析录像中的语音',
    obs_draft_done: '草稿已生成。',
    obs_draft_failed: '草稿生成失败',
    obs_not_yours_title: '无法打开这份观课记录',
    obs_not_yours: '观课记录 #{id} 不是你的观察记录，只有它的观课人（以及管理范围内的管理员）可以查看。',
    obs_not_found: '没有编号为 #{id} 的观课记录。',
    obs_not_yours_mine: '查看我的观察记录',
    // Evidence clips in /record (recgap).
    rec_play_clip: '播放片段',
    rec_clip: '证据片段',
    rec_clip_from: '片段来自录像',
    rec_no_clip: '（不含录像片段）',
    rec_set_in: '设为入点',
    rec_set_out: '设为出点',
    rec_pick_keys: '快捷键：I 设为入点，O 设为出点',
    rec_pick_title: '在录像中选取片段的入点和出点',
    rec_clip_needs_points: '请先在播放器上设定入点和出点（出点须在入点之后）。',
    // The lesson page (/lesson, recgap).
    ls_title: '课程',
    ls_pick: '请从今日课程、教师档案或听评课页面打开一节课。',
    ls_time: '时间',
    ls_mode: '模式',
    ls_state: '状态',
    ls_teacher: '主讲教师',
    ls_hub: '主讲教室',
    ls_sites: '结对教室',
    ls_assistant: '助教',
    ls_unknown: '（无权查看）',
    ls_recording: '课堂录像',
    ls_recordings: '录像',
    ls_observations: '观课记录',
    ls_no_recording: '本课没有录像。',
    ls_no_observation: '没有你可查看的观课记录。',
    // ---- recordings and the synced player (player.html, player.js; issue 20 item 3) ----
    pl_title: '录像回放',
    pl_play: '播放',
    pl_pause: '暂停',
    pl_seek: '播放进度',
    pl_keys: '空格/K 播放暂停 · ←/→ 前后 5 秒 · J/L 前后 10 秒 · 0–9 跳到十分之几 · 点击小画面与大画面互换',
    pl_no_sources: '这段录像没有可播放的画面',
    pl_kind_teacher_camera: '教师画面',
    pl_kind_courseware: '课件',
    pl_kind_classroom_camera: '教室画面',
    pl_kind_audio: '声音',
    pl_from: '从',
    pl_to: '到',
    pl_filter: '筛选',
    pl_started: '开始时间',
    pl_lesson: '课程',
    pl_teacher: '教师',
    pl_school: '学校',
    pl_paired: '结对学校',
    pl_state: '状态',
    pl_processing_ready: '可回放',
    pl_processing_processing: '处理中',
    pl_processing_failed: '处理失败',
    pl_processing_none: '等待处理',
    pl_download: '下载：',
    // Recording control and pages (issue 20, recctl).
    pl_processing_deleted: '已按保存期限删除',
    pl_parts: '分段录像：',
    pl_part: '片段',
    pl_gap_between: '中断',
    pl_gap: '丢失画面',
    rs_settings: '录制设置',
    rs_settings_hint: '各校课表课程是否在上课铃响时自动录制，以及录像保存天数（留空则按系统默认）。',
    rs_lessons: '自动录制课表课程',
    rs_on: '录制',
    rs_days: '录像保存天数',
    rs_days_default: '系统默认',
    rs_save: '保存',
    rs_saved: '已保存',
    rs_by_county: '由区县及以上管理员设置',
    ex_title: '导出 MP4',
    ex_showcase: '晒课版',
    ex_premium: '精品课版 (1080p)',
    ex_composite: '一屏三画面',
    ex_state_queued: '排队中',
    ex_state_running: '导出中',
    ex_state_done: '已完成',
    ex_state_failed: '失败',
    ex_progress: '导出进度',
    ex_mp4: '下载 MP4',
    ex_thumb: '下载封面',
    ex_unavailable: '此服务器未启用导出（需 GStreamer）',
    // Recording parts on one timeline and the zip of all files (issue 20, recfin).
    pl_zip: '全部文件（ZIP）',
    pl_not_recorded: '未录制（服务器重启）',
    pl_restart_gap: '未录制（服务器重启）',
    obs_recording: '课堂录像',
    obs_no_recording: '这节课还没有可回放的录像，课堂时间按计时器计算。',
    obs_seek_hint: '点击评论的时间可跳到录像的那一刻',
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
    // Admin pages, the patrol wall and the reports (issue 22 items 1, 6 and 7).
    ad_active: '正常',
    ad_added: '已添加',
    ad_adhoc: '临时加课',
    ad_cancel_edit: '取消编辑',
    ad_cancel_lesson: '停课',
    ad_cancelled: '已停课（统计报表中计为取消）',
    ad_city: '市',
    ad_confirm: '再点一次确认',
    ad_county: '县（区）',
    ad_delete: '删除',
    ad_deleted: '已删除',
    ad_devices: '设备',
    ad_disable: '停用',
    ad_disabled: '已停用',
    ad_edit: '编辑',
    ad_enable: '启用',
    ad_ends: '下课时间',
    ad_ends_on: '结束日期',
    ad_generate: '按课表生成课程',
    ad_generate_hint: '按课表为所选日期生成课程；已有的课程不会重复生成。',
    ad_generated: '已生成 {n} 节课',
    ad_hub_room: '主讲教室',
    ad_issued_at: '签发时间',
    ad_label: '设备名称',
    ad_lesson_title: '课题',
    ad_lessons: '课程管理',
    ad_level_city: '市级',
    ad_level_county: '县级',
    ad_level_global: '全部',
    ad_level_province: '省级',
    ad_level_school: '校级',
    ad_new: '新增',
    ad_new_slot: '新增一节课表',
    ad_next: '下一页',
    ad_page: '共 {n} 条 · 第 {page}/{pages} 页',
    ad_prev: '上一页',
    ad_province: '省',
    ad_qr: '一体机链接二维码',
    ad_regions: '地区',
    ad_reissue: '重新签发',
    ad_reissued: '已重新签发，旧链接已失效',
    ad_reset_password: '重置密码',
    ad_revoked: '已吊销',
    ad_revoked_done: '已吊销，该设备立即下线',
    ad_role: '角色',
    ad_save: '保存',
    ad_saved: '已保存',
    ad_scope: '管理范围',
    ad_search: '搜索…',
    ad_starts: '上课时间',
    ad_starts_on: '开始日期',
    ad_subjects: '任教学科',
    ad_teachers: '教师',
    ad_terms: '学期',
    ad_users: '用户',
    ad_weekday: '星期',
    pt_absent: '未连接',
    pt_click: '点击放大观看',
    pt_close: '返回巡课墙',
    pt_count: '（{n} 节课）',
    pt_hint: '你管理范围内正在上课的教室。画面静音；你观看时不会被看到、听到，也不计入到课名单。点击画面放大观看。',
    pt_none: '现在没有正在上课的教室',
    pt_present: '在线',
    pt_sound_off: '关闭声音',
    pt_sound_on: '打开声音',
    pt_title: '巡课',
    rp_any_term: '按日期',
    rp_attendance: '到课率',
    rp_by: '统计周期',
    rp_by_term: '按学期',
    rp_by_week: '按周',
    rp_cancelled: '停课',
    rp_classroom: '教室',
    rp_csv: '下载 CSV',
    rp_date: '日期',
    rp_due: '应开',
    rp_empty: '这段时间没有数据',
    rp_expected: '应到',
    rp_from: '开始日期',
    rp_good_share: '良好占比',
    rp_held: '已开',
    rp_lessons: '授课节数',
    rp_lessons_all: '课程明细',
    rp_links: '各校网络质量',
    rp_minutes: '教师授课时长',
    rp_minutes_n: '授课分钟',
    rp_no_term: '不在任何学期',
    rp_o_cancelled: '已停课',
    rp_o_held: '已开课',
    rp_o_missed: '未开课',
    rp_o_upcoming: '未到时间',
    rp_outcome: '结果',
    rp_period: '周期',
    rp_present: '实到',
    rp_rate: '开课率',
    rp_rate_hint: '开课率 = 已开课节数 ÷ 应开课节数。应开课 = 排课 − 停课 − 尚未到时间；主讲教师或主讲教室推送了音视频即为已开课。',
    rp_scheduled: '排课',
    rp_show: '查看',
    rp_sites: '各教室到课率',
    rp_sites_present: '到课教室',
    rp_title: '统计报表',
    rp_to: '结束日期',
    rp_upcoming: '未到时间',
    rp_week_of: '{date} 起的一周',
    rp_window: '统计范围：{from} 至 {to}',
    // Teacher console and classroom page (issue 22 items 3, 4 and 8).
    console_not_yours: '您不是本节课的主讲教师，不能在此授课（摄像头和麦克风没有打开）',
    presence_absent: '未到',
    presence_watching: '在线·观看中',
    presence_publishing: '在线·音视频上行',
    attendance_count: '到课 {present}/{expected}',
    mute_class: '静音该班',
    unmute_class: '取消静音',
    mute_all: '全部静音',
    unmute_all: '全部取消静音',
    muted_badge: '已静音',
    ack_hand: '知道了',
    focus_tile: '放大',
    unfocus_tile: '还原',
    clock_ends: '下课 {end}',
    clock_left: '还剩 {left}',
    clock_before: '距上课 {left}',
    clock_over: '已超时 {over}',
    kiosk_revoked: '此教室设备已停用，或链接无效',
    kiosk_revoked_fix: '请联系学校管理员，重新生成教室一体机链接。',
    kiosk_not_open: '本节课还没有开始',
    kiosk_opens_at: '{time} 开放进入（{start} 上课）',
    kiosk_no_more: '今天没有更多课程',
    kiosk_next: '下一节：{time} {subject} · {grade}',
    kiosk_error: '暂时无法进入课堂',
    waiting_teacher: '等待主讲教师开始上课',
    waiting_teacher_sub: '已连接课堂，老师开始后画面会自动出现',
    on_air: '正在发言 · 各课堂都能听到本班',
    class_muted: '老师已将本班静音',
    hand_seen: '老师已看到本班举手',
    speaker_now: '正在发言',
    // Weak links (issue 19 items 1 and 2: per-viewer layers, audio only below the lowest).
    weak_audio_only: '网络较弱：仅音频',
    weak_audio_only_hint: '本教室的网络暂时承载不了视频，声音照常；网络恢复后画面自动回来',
    layer_cap: '视频上限',
    layer_cap_none: '不限（按网络自动）',
    layer_cap_0: '最低画质（卫星）',
    layer_cap_1: '中等画质',
    layer_cap_2: '最高画质',
    // Running a term (issue 22 rest): cancelled lessons, device labels and last seen, roles.
    state_cancelled: '已停课',
    kiosk_cancelled: '本节课已停课',
    kiosk_cancelled_sub: '{time} {subject} · {grade} 停课，无需进入课堂',
    kiosk_next_opens: '下一节：{time} 开放进入 · {subject} · {grade}（{start} 上课）',
    ad_last_seen: '最近在线',
    ad_never_seen: '尚未使用',
    ad_rename: '改名',
    ad_change_role: '更改角色',
    // Link reports (issue 19 item 6): the console's live link, a lesson's report.
    link_loss: '丢包',
    link_layer_0: '高清',
    link_layer_1: '中等画质',
    link_layer_2: '低画质',
    link_layer_audio: '仅音频',
    link_report: '线路报告',
    link_report_csv: '导出线路报告（CSV）',
    link_report_none: '暂无线路数据（课堂观看后生成）',
    link_col_name: '教室',
    link_col_school: '学校',
    link_col_minutes: '在线分钟',
    link_col_kbps: '平均码率（kbit/s）',
    link_col_loss: '丢包率',
    link_col_rtt: '往返时延',
    link_col_jitter: '抖动',
    link_col_layers: '高清 / 中 / 低 / 仅音频',
    link_col_fps: '帧率',
    link_col_freezes: '卡顿',
    link_col_conceal: '音频补偿',
    link_col_grade: '线路等级',
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
    // inspect2: the FIAS 3 s prompt
    obs_fias_tick: 'Code a category',
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
    // Teacher records (issue 21 item 5).
    rec_title: 'Teacher record',
    rec_term: 'Term',
    rec_csv: 'Export CSV',
    rec_print: 'Print',
    rec_teaching: 'Teaching',
    rec_lessons: 'Lessons',
    rec_minutes: 'Minutes',
    rec_modes: 'Modes',
    rec_paired: 'Paired schools',
    rec_upcoming: 'Lessons of the term still to come',
    rec_lesson_list: 'Lesson list',
    rec_recordings: 'Recordings',
    rec_observations: 'Observation results',
    rec_chart_rubric: 'Rubric totals over time',
    rec_chart_st: 'S-T lesson types',
    rec_chart_fias: 'FIAS talk ratios',
    rec_observation: 'Observation',
    rec_abilities: 'Micro-ability points',
    rec_point: 'Point',
    rec_recording: 'Recording',
    rec_in: 'In (s)',
    rec_out: 'Out (s)',
    rec_note: 'Note',
    rec_file: 'File',
    rec_add_evidence: 'Add evidence',
    rec_role_hub: 'Hub teacher',
    rec_role_assisting: 'Assisting teacher',
    rec_mode_delivery: 'Dedicated delivery',
    rec_mode_master: 'Master-teacher classroom',
    rec_mode_sync: 'Synchronous class',
    rec_none: 'None',
    rec_exports: 'Showcase exports',
    rec_exp_showcase: 'Showcase MP4',
    rec_exp_premium: 'Premium MP4',
    rec_exp_composite: 'Composite (three pictures)',
    rec_exp_queued: 'queued',
    rec_exp_running: 'exporting',
    rec_exp_done: 'done',
    rec_exp_failed: 'failed',
    rec_mean_rubric: 'Mean rubric total',
    rec_mean_teacher_talk: 'Mean FIAS teacher talk',
    rec_grade_excellent: 'Excellent',
    rec_grade_pass: 'Pass',
    rec_grade_fail: 'Fail',
    rec_status_pending: 'Awaiting grade',
    rec_status_no_evidence: 'No evidence',
    rec_status_graded: 'Graded',
    rec_min_points: 'Points to pick per term, at least',
    rec_picked: 'picked',
    rec_met: 'requirement met',
    rec_not_met: 'requirement not met',
    rec_no_teacher: 'Name a teacher (?teacher=id)',
    // Inspections in the record and ability-point rounds (inspap: issue 21 item 6).
    rec_inspection: 'Inspection',
    rec_not_drawn: 'Not drawn',
    rec_ins_reviewing: 'Under review',
    rec_ins_appealed: 'Appealed',
    rec_ins_appeal: 'Appeal',
    rec_ins_reason: 'Reason for the appeal',
    ins_source: 'Drawn from',
    ins_source_observation: 'Observations',
    ins_source_ability_point: 'Ability points',
    ins_term: 'Term',
    ins_item: 'Item ',
    ins_pool: 'Reviewer pool',
    ins_reviewer: 'Reviewer',
    ins_expert: 'Expert',
    ins_add_reviewer: 'Add a reviewer',
    ins_user_id: 'User id',
    ins_add: 'Add',
    ins_remove: 'Remove',
    ins_pool_save: 'Save the pool',
    ins_pool_saved: 'Saved',
    ins_pool_unsaved: 'Not saved',
    rec_rec_recording: 'Recording',
    rec_rec_stopped: 'Finished',
    rec_rec_failed: 'Failed',
    rec_proc_processing: 'Processing',
    rec_proc_ready: 'Ready to play',
    rec_proc_failed: 'Processing failed',
    // Sampling inspection (抽检, issue 21 item 6: /inspect).
    ins_title: 'Inspection',
    ins_manage: 'Manage inspection rounds',
    ins_rounds: 'Inspection rounds',
    ins_round: 'Inspection round',
    ins_name: 'Name',
    ins_level: 'Level',
    ins_level_county: 'County',
    ins_level_city: 'City',
    ins_level_province: 'Province',
    ins_region: 'Region',
    ins_seed: 'Seed',
    ins_seed_auto: 'automatic',
    ins_create: 'New round',
    ins_ratio: 'Ratio',
    ins_state: 'State',
    ins_state_open: 'Open',
    ins_state_drawn: 'Drawn',
    ins_population: 'Population',
    ins_draw: 'Draw',
    ins_progress: 'Progress',
    ins_units: 'Pass rate per unit',
    ins_unit: 'Unit',
    ins_samples: 'Samples',
    ins_decided: 'Decided',
    ins_passed: 'Passed',
    ins_pass_rate: 'Pass rate',
    ins_sample_list: 'Samples',
    ins_pseudonym: 'Pseudonym',
    ins_stratum: 'Stratum',
    ins_reviews: 'Reviews',
    ins_outcome: 'Outcome',
    ins_back: 'Back to the rounds',
    ins_my_reviews: 'My reviews',
    ins_blind_note: 'Double-blind: only a pseudonym and the stratum, never teacher, school or region.',
    ins_reason: 'Why',
    ins_evidence: 'Observation figures',
    ins_score: 'Score',
    ins_grade: 'Grade',
    ins_saved: 'Saved',
    ins_nobody: 'no eligible reviewer',
    ins_p_samples: 'Samples',
    ins_p_reviews: 'Reviews',
    ins_p_graded: 'Graded',
    ins_p_unassigned: 'No eligible reviewer',
    ins_p_disputes: 'Disputes re-checked',
    ins_p_appeals: 'Appeals',
    ins_p_passed: 'Passed',
    ins_p_failed: 'Failed',
    ins_p_pending: 'Pending',
    ins_reason_draw: 'Draw',
    ins_reason_dispute: 'Dispute re-check',
    ins_reason_appeal: 'Appeal re-check',
    ins_outcome_pending: 'Pending',
    ins_outcome_passed: 'Passed',
    ins_outcome_failed: 'Failed',
    ins_disputed: 'disputed',
    ins_stage_primary: 'Primary',
    ins_stage_junior: 'Junior secondary',
    ins_stage_senior: 'Senior secondary',
    ins_stage_other: 'Other stage',
    ins_kind_hub: 'Hub school',
    ins_kind_partner: 'Partner school',
    ins_area_urban: 'Urban',
    ins_area_rural: 'Rural',
    ins_area_unknown: 'Urban/rural not given',
    // The automatic S-T draft (issue 21 item 3).
    obs_draft: 'Automatic S-T draft',
    obs_draft_hint: 'From voice activity on the hub teacher\'s track in the lesson recording: at each sample instant T (the teacher is speaking) or S (anything else), for you to check; where it differs from your codes is marked in red.',
    obs_draft_make: 'Draft from the recording',
    obs_draft_adopt: 'Use the draft as my codes',
    obs_draft_none: 'No draft yet.',
    obs_draft_from: 'From recording',
    obs_draft_agree: 'Agrees with your codes',
    obs_draft_differs: 'differ',
    obs_draft_at: 'Time',
    obs_draft_row: 'Draft',
    obs_draft_mine: 'My codes',
    obs_draft_teacher_voice: 'Teacher speech (‰)',
    // The draft as a background job (recgap).
    obs_draft_pending: 'The draft is waiting to be made…',
    obs_draft_running: 'Listening to the recording',
    obs_draft_done: 'The draft is made.',
    obs_draft_failed: 'The draft could not be made',
    obs_not_yours_title: 'This observation cannot be opened',
    obs_not_yours: 'Observation #{id} is not one of yours: only its observer (and the admins over it) may open it.',
    obs_not_found: 'There is no observation #{id}.',
    obs_not_yours_mine: 'See my observations',
    // Evidence clips in /record (recgap).
    rec_play_clip: 'Play clip',
    rec_clip: 'Evidence clip',
    rec_clip_from: 'Clip from recording',
    rec_no_clip: '(no recording clip)',
    rec_set_in: 'Set in point',
    rec_set_out: 'Set out point',
    rec_pick_keys: 'Keys: I sets the in point, O the out point',
    rec_pick_title: 'Pick the clip\'s in and out points on the recording',
    rec_clip_needs_points: 'Set the in and out points on the player first (out after in).',
    // The lesson page (/lesson, recgap).
    ls_title: 'Lesson',
    ls_pick: 'Open a lesson from Today, a teacher record or the observation page.',
    ls_time: 'Time',
    ls_mode: 'Mode',
    ls_state: 'State',
    ls_teacher: 'Hub teacher',
    ls_hub: 'Hub classroom',
    ls_sites: 'Paired classrooms',
    ls_assistant: 'assistant',
    ls_unknown: '(not yours to see)',
    ls_recording: 'Lesson recording',
    ls_recordings: 'Recordings',
    ls_observations: 'Observations',
    ls_no_recording: 'This lesson has no recording.',
    ls_no_observation: 'No observations you may read.',
    // ---- recordings and the synced player (player.html, player.js; issue 20 item 3) ----
    pl_title: 'Recordings',
    pl_play: 'Play',
    pl_pause: 'Pause',
    pl_seek: 'Position',
    pl_keys: 'Space/K play or pause · ←/→ 5 s · J/L 10 s · 0–9 jump to tenths · click a small picture to swap it with the large one',
    pl_no_sources: 'This recording has nothing to play',
    pl_kind_teacher_camera: 'Teacher',
    pl_kind_courseware: 'Courseware',
    pl_kind_classroom_camera: 'Classroom',
    pl_kind_audio: 'Sound',
    pl_from: 'From',
    pl_to: 'To',
    pl_filter: 'Filter',
    pl_started: 'Started',
    pl_lesson: 'Lesson',
    pl_teacher: 'Teacher',
    pl_school: 'School',
    pl_paired: 'Paired schools',
    pl_state: 'State',
    pl_processing_ready: 'Ready',
    pl_processing_processing: 'Processing',
    pl_processing_failed: 'Processing failed',
    pl_processing_none: 'Waiting to be processed',
    pl_download: 'Download:',
    // Recording control and pages (issue 20, recctl).
    pl_processing_deleted: 'Deleted by the retention policy',
    pl_parts: 'Recorded in parts:',
    pl_part: 'Part',
    pl_gap_between: 'gap',
    pl_gap: 'Lost picture',
    rs_settings: 'Recording settings',
    rs_settings_hint: 'Whether each school’s timetable lessons are recorded at the bell, and how many days their recordings are kept (blank: the server’s default).',
    rs_lessons: 'Record timetable lessons',
    rs_on: 'Record',
    rs_days: 'Keep recordings (days)',
    rs_days_default: 'default',
    rs_save: 'Save',
    rs_saved: 'Saved',
    rs_by_county: 'Set by a county (or higher) admin',
    ex_title: 'Export MP4',
    ex_showcase: 'Showcase',
    ex_premium: 'Premium (1080p)',
    ex_composite: 'Three in one',
    ex_state_queued: 'Queued',
    ex_state_running: 'Exporting',
    ex_state_done: 'Done',
    ex_state_failed: 'Failed',
    ex_progress: 'Export progress',
    ex_mp4: 'Download MP4',
    ex_thumb: 'Download thumbnail',
    ex_unavailable: 'Exports are not enabled on this server (needs GStreamer)',
    // Recording parts on one timeline and the zip of all files (issue 20, recfin).
    pl_zip: 'All files (ZIP)',
    pl_not_recorded: 'Not recorded (server restart)',
    pl_restart_gap: 'Not recorded (server restart)',
    obs_recording: 'Lesson recording',
    obs_no_recording: 'This lesson has no recording to play yet; lesson time follows the timer.',
    obs_seek_hint: 'Click a comment’s time to seek the recording to that moment',
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
    // Admin pages, the patrol wall and the reports (issue 22 items 1, 6 and 7).
    ad_active: 'Active',
    ad_added: 'Added',
    ad_adhoc: 'Add a lesson',
    ad_cancel_edit: 'Close',
    ad_cancel_lesson: 'Cancel lesson',
    ad_cancelled: 'Lesson cancelled (the reports count it as cancelled)',
    ad_city: 'City',
    ad_confirm: 'Click again to confirm',
    ad_county: 'County',
    ad_delete: 'Delete',
    ad_deleted: 'Deleted',
    ad_devices: 'Devices',
    ad_disable: 'Disable',
    ad_disabled: 'Disabled',
    ad_edit: 'Edit',
    ad_enable: 'Enable',
    ad_ends: 'Ends',
    ad_ends_on: 'Last day',
    ad_generate: 'Generate lessons from the timetable',
    ad_generate_hint: 'Makes the timetable’s lessons for the chosen days; lessons already there are kept.',
    ad_generated: 'Generated {n} lessons',
    ad_hub_room: 'Hub classroom',
    ad_issued_at: 'Issued',
    ad_label: 'Device name',
    ad_lesson_title: 'Topic',
    ad_lessons: 'Lessons',
    ad_level_city: 'City',
    ad_level_county: 'County',
    ad_level_global: 'Everything',
    ad_level_province: 'Province',
    ad_level_school: 'School',
    ad_new: 'New',
    ad_new_slot: 'New timetable slot',
    ad_next: 'Next',
    ad_page: '{n} rows · page {page} of {pages}',
    ad_prev: 'Previous',
    ad_province: 'Province',
    ad_qr: 'QR code of the kiosk link',
    ad_regions: 'Regions',
    ad_reissue: 'Re-issue',
    ad_reissued: 'Re-issued; the old link no longer works',
    ad_reset_password: 'Reset password',
    ad_revoked: 'Revoked',
    ad_revoked_done: 'Revoked; the device is cut off now',
    ad_role: 'Role',
    ad_save: 'Save',
    ad_saved: 'Saved',
    ad_scope: 'Scope',
    ad_search: 'Search…',
    ad_starts: 'Starts',
    ad_starts_on: 'First day',
    ad_subjects: 'Subjects',
    ad_teachers: 'Teachers',
    ad_terms: 'Terms',
    ad_users: 'Users',
    ad_weekday: 'Weekday',
    pt_absent: 'Not connected',
    pt_click: 'Click to watch full size',
    pt_close: 'Back to the wall',
    pt_count: '({n} lessons)',
    pt_hint: 'The classrooms in lesson now, within your scope. Pictures are muted; while you watch you are neither seen nor heard and not counted as present. Click a picture to watch it full size.',
    pt_none: 'No classroom is in lesson now',
    pt_present: 'Connected',
    pt_sound_off: 'Sound off',
    pt_sound_on: 'Sound on',
    pt_title: 'Patrol',
    rp_any_term: 'By dates',
    rp_attendance: 'Attendance',
    rp_by: 'Group by',
    rp_by_term: 'Term',
    rp_by_week: 'Week',
    rp_cancelled: 'Cancelled',
    rp_classroom: 'Classroom',
    rp_csv: 'Download CSV',
    rp_date: 'Date',
    rp_due: 'Due',
    rp_empty: 'Nothing in this period',
    rp_expected: 'Expected',
    rp_from: 'From',
    rp_good_share: 'Good share',
    rp_held: 'Held',
    rp_lessons: 'Lessons',
    rp_lessons_all: 'Every lesson',
    rp_links: 'Link quality by school',
    rp_minutes: 'Minutes taught per teacher',
    rp_minutes_n: 'Minutes',
    rp_no_term: 'In no term',
    rp_o_cancelled: 'Cancelled',
    rp_o_held: 'Held',
    rp_o_missed: 'Not held',
    rp_o_upcoming: 'Not yet over',
    rp_outcome: 'Outcome',
    rp_period: 'Period',
    rp_present: 'Present',
    rp_rate: 'Lessons held',
    rp_rate_hint: 'Rate = lessons held ÷ lessons due. Due = scheduled − cancelled − not yet over; a lesson is held when its hub teacher or hub classroom sent audio or video.',
    rp_scheduled: 'Scheduled',
    rp_show: 'Show',
    rp_sites: 'Attendance by classroom',
    rp_sites_present: 'Sites present',
    rp_title: 'Reports',
    rp_to: 'To',
    rp_upcoming: 'Not yet over',
    rp_week_of: 'Week of {date}',
    rp_window: 'Period: {from} to {to}',
    // Teacher console and classroom page (issue 22 items 3, 4 and 8).
    console_not_yours: "You are not this lesson's teacher, so the console stays closed (camera and microphone were not started)",
    presence_absent: 'Absent',
    presence_watching: 'Present, watching',
    presence_publishing: 'Present, sending',
    attendance_count: 'Classes present {present}/{expected}',
    mute_class: 'Mute class',
    unmute_class: 'Unmute class',
    mute_all: 'Mute all classes',
    unmute_all: 'Unmute all classes',
    muted_badge: 'Muted',
    ack_hand: 'Acknowledge',
    focus_tile: 'Enlarge',
    unfocus_tile: 'Back to grid',
    clock_ends: 'Ends {end}',
    clock_left: '{left} left',
    clock_before: 'Bell in {left}',
    clock_over: '{over} over time',
    kiosk_revoked: 'This classroom device was revoked, or its link is not valid',
    kiosk_revoked_fix: 'Ask the school administrator for a new classroom kiosk link.',
    kiosk_not_open: 'This lesson has not started yet',
    kiosk_opens_at: 'Opens at {time} (bell at {start})',
    kiosk_no_more: 'No more lessons today',
    kiosk_next: 'Next: {time} {subject} · {grade}',
    kiosk_error: 'Cannot join the lesson right now',
    waiting_teacher: 'Waiting for the teacher to start',
    waiting_teacher_sub: 'Connected; the picture appears as soon as the teacher starts',
    on_air: 'On air: every classroom hears this class',
    class_muted: 'The teacher muted this class',
    hand_seen: 'The teacher saw your raised hand',
    speaker_now: 'Speaking',
    // Weak links (issue 19 items 1 and 2: per-viewer layers, audio only below the lowest).
    weak_audio_only: 'Weak network: audio only',
    weak_audio_only_hint: 'This classroom’s line cannot carry video just now; the sound goes on, and the picture comes back by itself when the line recovers',
    layer_cap: 'Video cap',
    layer_cap_none: 'None (follows the line)',
    layer_cap_0: 'Lowest (satellite)',
    layer_cap_1: 'Medium',
    layer_cap_2: 'Highest',
    // Running a term (issue 22 rest): cancelled lessons, device labels and last seen, roles.
    state_cancelled: 'Cancelled',
    kiosk_cancelled: 'This lesson is cancelled',
    kiosk_cancelled_sub: '{time} {subject} · {grade} is cancelled: no need to join',
    kiosk_next_opens: 'Next: opens at {time} · {subject} · {grade} (bell at {start})',
    ad_last_seen: 'Last seen',
    ad_never_seen: 'Never used',
    ad_rename: 'Rename',
    ad_change_role: 'Change role',
    // Link reports (issue 19 item 6): the console's live link, a lesson's report.
    link_loss: 'loss',
    link_layer_0: 'top layer',
    link_layer_1: 'medium layer',
    link_layer_2: 'lowest layer',
    link_layer_audio: 'audio only',
    link_report: 'Link report',
    link_report_csv: 'Export the link report (CSV)',
    link_report_none: 'No link figures yet (they come once classrooms watch)',
    link_col_name: 'Classroom',
    link_col_school: 'School',
    link_col_minutes: 'Minutes online',
    link_col_kbps: 'Mean rate (kbit/s)',
    link_col_loss: 'Loss',
    link_col_rtt: 'Round trip',
    link_col_jitter: 'Jitter',
    link_col_layers: 'Top / medium / low / audio only',
    link_col_fps: 'Frame rate',
    link_col_freezes: 'Freezes',
    link_col_conceal: 'Audio concealed',
    link_col_grade: 'Line grade',
  },
};

/**
 * Every page string: the table above and the shared words of `lib/words.js` (roles, kinds,
 * columns, modes). A page area may add its own block above; `node --test` checks that every
 * key has both languages and that no key is defined twice.
 */
export const DICT = merge(PAGES_DICT, WORDS);

/**
 * The page language: ?lang=, then the remembered choice, then Chinese.
 * @returns {'zh' | 'en'}
 */
export function lang() {
  const q = new URLSearchParams(window.location.search).get('lang');
  const l = pickLang(q, localStorage.getItem('classrelay.lang'));
  if (q === 'en' || q === 'zh') localStorage.setItem('classrelay.lang', q);
  return l;
}

/**
 * Translates `key` (falls back to the key itself, so a missing entry is visible and the
 * page-walk test finds it).
 * @param {string} key
 * @returns {string}
 */
export function t(key) {
  return lookup(DICT, lang(), key);
}

/**
 * Translates `key` and fills its `{name}` placeholders.
 * @param {string} key
 * @param {Record<string, string | number | null | undefined>} vars
 */
export function tf(key, vars) {
  return fill(t(key), vars);
}

/**
 * A value's label from a family of keys (`role_teacher`, `kind_hub`): `fallback` (default
 * empty) when there is no value, the raw value only when the table has no such key.
 * @param {string} family
 * @param {string | null | undefined} value
 */
export function label(family, value) {
  if (value == null || value === '') return '';
  return lookup(DICT, lang(), `${family}_${value}`, String(value));
}

/**
 * A date (`2026-12-04`) in the page's language.
 * @param {string | null | undefined} s
 */
export function dateText(s) {
  return dateLabel(s, lang());
}

/**
 * An RFC 3339 time as "12月4日 14:50" / "4 Dec 14:50" (the school's wall clock).
 * @param {string | null | undefined} iso
 * @param {{ year?: boolean }} [opts]
 */
export function dateTimeText(iso, opts) {
  return dateTime(iso, lang(), opts);
}

/** Fills every [data-i18n] element and adds the language switch to #lang if present. */
export function translatePage() {
  document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-i18n]').forEach((el) => {
    el.textContent = t(/** @type {HTMLElement} */ (el).dataset.i18n ?? '');
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => {
    /** @type {HTMLInputElement} */ (el).placeholder = t(/** @type {HTMLElement} */ (el).dataset.i18nPlaceholder ?? '');
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

/**
 * A thrown value as a { status, title, detail, type } problem.
 * @param {any} e
 * @returns {{ status: number | null, title: string, detail: string | null, type: string | null, [k: string]: any }}
 */
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
  /** @type {Record<string, string>} */
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
    // Every member comes along (a problem may carry `opens_at`, `errors`, `limit`, …: the
    // message table fills its sentences from them).
    throw {
      ...(p && typeof p === 'object' ? p : {}),
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
  el.textContent = `${t('error')}: ${problemText(p, lang())}`;
  if (p.status) el.title = `HTTP ${p.status}${p.type ? ` ${p.type}` : ''}`;
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

/**
 * "08:00" from an RFC 3339 local time string as the API gives it ("" when there is none).
 * @param {string | null | undefined} rfc3339
 */
export function hhmm(rfc3339) {
  return wallHhmm(rfc3339);
}

/**
 * The events of a lesson, read from `/api/lessons/{id}/events` with fetch. Calls
 * `onEvent({ kind, seq, at, data })` for each; resumes after a drop with Last-Event-ID, so
 * nothing is missed (a `resync` event carries the full picture when too much was).
 */
export class LessonEvents {
  /**
   * @param {number | string} lessonId
   * @param {(ev: { kind: string, seq?: number | null, at?: number | null, data: any }) => void} onEvent
   * @param {(msg: string) => void} [log]
   */
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
    let failures = 0;
    while (!this.closed) {
      try {
        this.abort = new AbortController();
        const headers = { Accept: 'text/event-stream' };
        const dev = deviceToken();
        if (dev) headers.Authorization = `Bearer ${dev}`;
        if (this.last != null) headers['Last-Event-ID'] = String(this.last);
        const resp = await fetch(this.url, { headers, signal: this.abort.signal, credentials: 'same-origin' });
        if (eventsRefused(resp.status)) {
          this.log(`events: HTTP ${resp.status}, giving up`);
          this.onEvent({ kind: 'events-refused', data: { status: resp.status } });
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        failures = 0;
        await this.read(resp.body);
      } catch (e) {
        if (this.closed) return;
        this.log(`events: ${e}; retrying in ${backoff(failures, { max: 8000 })} ms`);
      }
      await new Promise((r) => setTimeout(r, backoff(failures, { max: 8000 })));
      failures += 1;
    }
  }

  /** @param {ReadableStream<Uint8Array>} body */
  async read(body) {
    const reader = body.pipeThrough(/** @type {TransformStream<Uint8Array, string>} */ (new TextDecoderStream())).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const msg of parser.push(value)) {
        if (msg.id != null) this.last = msg.id;
        this.onEvent(lessonEvent(msg));
      }
      // An id-only message moves the resume point too.
      if (parser.lastId != null) this.last = parser.lastId;
    }
  }

  close() {
    this.closed = true;
    if (this.abort) this.abort.abort();
  }
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
      // A viewer coming back asks the server to close its previous session of the same
      // source (its DELETE may have been lost with the network): `?replace=1`.
      const target = new URL(url, window.location.href);
      if (this.opts.kind === 'whep' && this.attempts > 1) target.searchParams.set('replace', '1');
      const { location, answer } = await postOffer(target.toString(), token, pc.localDescription.sdp);
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
    const delay = backoff(Math.min(this.attempts, 5));
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

// ---- Link reports (issue 19 item 6): the page's getStats, posted every 10 s ----------------

/** How often a page posts its link figures (ms). */
export const LINK_STATS_EVERY_MS = 10_000;

/**
 * Posts the getStats figures of every open connection `pcs()` gives to the lesson's link
 * report, every LINK_STATS_EVERY_MS, each connection under its own id (a reconnect is a new
 * one). Errors are only logged: the lesson goes on. Returns the stop function.
 * @param {number | string} lessonId
 * @param {() => Array<RTCPeerConnection | null | undefined>} pcs
 * @param {(line: string) => void} log
 */
export function reportLinkStats(lessonId, pcs, log) {
  /** @type {WeakMap<RTCPeerConnection, { conn: string, since: number }>} */
  const seen = new WeakMap();
  const post = async () => {
    for (const pc of pcs()) {
      if (!pc || pc.connectionState !== 'connected') continue;
      let c = seen.get(pc);
      if (!c) {
        c = { conn: connId(Math.random), since: Date.now() };
        seen.set(pc, c);
      }
      try {
        const body = pageStats((await pc.getStats()).values(), c.conn, Date.now() - c.since);
        await api('POST', `/api/lessons/${lessonId}/link-stats`, body);
      } catch (e) {
        log(`link stats: ${e?.title ?? e}`);
      }
    }
  };
  const timer = setInterval(post, LINK_STATS_EVERY_MS);
  return () => clearInterval(timer);
}

/** A participant's live link as one line: rate, loss, round trip, layer or audio only. */
export function liveLinkText(l) {
  const x = liveLink(l);
  const bits = [];
  if (x.kbps != null) bits.push(`${Math.round(x.kbps)} kbit/s`);
  if (x.loss != null) bits.push(`${t('link_loss')} ${x.loss}%`);
  if (x.rtt != null) bits.push(`${Math.round(x.rtt)} ms`);
  if (x.layer) bits.push(t(x.layer));
  return bits.join(' · ');
}

/** A status pill element that follows a Link's state. */
export function linkBadge(state) {
  return h('span', { class: `badge link-${state}`, dataset: { state } }, t(`link_${state}`));
}

/**
 * The state a page shows for lesson `l`: `cancelled` for a lesson called off (its API state
 * is `ended`, but it was never held), else its state. Look it up as `t(`state_${...}`)`.
 * @param {{ state: string, cancelled?: boolean }} l
 */
export function lessonStateOf(l) {
  return l.cancelled ? 'cancelled' : l.state;
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
    who.textContent = me.kind === 'device' ? me.label : `${me.display_name || me.username} · ${label('role', me.role)}`;
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
