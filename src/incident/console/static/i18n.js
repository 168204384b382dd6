// UI text in English and Simplified Chinese, and locale-aware numbers and times (Intl).
// Both dictionaries have the same keys (a browser test checks it).

const en = {
  "app.name": "Incident console",
  "app.skip": "Skip to content",
  "nav.dispatch": "Dispatch",
  "nav.board": "Command board",
  "nav.review": "Review",
  "nav.main": "Views",
  "lang.label": "Language",
  "login.title": "Sign in",
  "login.token": "Access token",
  "login.help": "Paste the token an administrator gave you (incident tokens add NAME --role ROLE).",
  "login.submit": "Sign in",
  "login.bad": "That token was not accepted: {message}",
  "boot.title": "Service unreachable",
  "boot.wait": "Service unreachable, retrying in {seconds} s (attempt {attempt}). {message}",
  "boot.now": "Service unreachable, retrying now (attempt {attempt})…",
  "boot.retry": "Retry now",
  "boot.other": "Sign in with another token",
  "user.signout": "Sign out",
  "user.as": "{name} ({role})",
  "live.connecting": "Connecting…",
  "live.live": "Live",
  "live.down": "Offline",
  "live.lost": "Live updates lost at {time}. Figures may be stale. Reconnecting in {seconds} s (attempt {attempt})…",
  "live.reconnecting": "Live updates lost at {time}. Reconnecting…",
  "live.back": "Live updates restored at {time}; figures refreshed.",
  "common.loading": "Loading…",
  "common.cancel": "Cancel",
  "common.close": "Close",
  "common.none": "none",
  "common.reason": "Reason (optional)",
  "common.reason.required": "Reason",
  "common.error": "Error: {message}",
  "common.done": "Done",
  "common.all": "All",
  "common.households": "Households",
  "common.unknown": "unknown",
  "dispatch.title": "Dispatch",
  "dispatch.triage": "Triage ({count})",
  "dispatch.open": "Open incidents ({count})",
  "dispatch.new": "New incident",
  "dispatch.empty.reports": "No unassigned reports.",
  "dispatch.empty.incidents": "No open incidents.",
  "dispatch.select": "Select an incident on the left, declare one from a report, or start a new one.",
  "report.declare": "Declare",
  "report.link": "Link…",
  "report.dismiss": "Dismiss…",
  "report.link.title": "Link report {id} to an incident",
  "report.link.to": "Incident",
  "report.dismiss.title": "Dismiss report {id}",
  "report.declared": "Declared {id} from the report.",
  "report.new": "New report: {summary}",
  "report.observed": "observed {time}",
  "report.show": "Show on map",
  "declare.title": "Declare a new incident",
  "declare.kind": "Kind",
  "declare.utility": "Utility",
  "declare.title.field": "Title",
  "declare.severity": "Severity",
  "declare.drill": "Drill (exercise: notices go to the drill carrier only)",
  "declare.submit": "Declare",
  "declare.done": "Declared {id}. Now set its area.",
  "incident.owner": "Owner",
  "incident.status": "Status",
  "incident.severity": "Severity",
  "incident.stage": "Stage",
  "incident.households": "Households affected",
  "incident.declared": "Declared",
  "incident.drill": "DRILL",
  "incident.awaiting": "Awaiting confirmation",
  "incident.confirm": "Confirm incident",
  "incident.noarea": "No area yet",
  "incident.public": "Residents",
  "incident.public.yes": "Shown on the public page",
  "incident.public.no": "Internal",
  "incident.public.drill": "Never shown (drill)",
  "incident.public.show": "Show to residents",
  "incident.public.hide": "Take off the public page",
  "incident.public.page": "Public page",
  "tab.area": "Area",
  "tab.notice": "Notice",
  "tab.playbook": "Playbook",
  "tab.log": "Log",
  "area.op": "Change",
  "area.op.replace": "Replace the area",
  "area.op.add": "Add to the area",
  "area.op.remove": "Remove from the area",
  "area.draw": "Draw polygon",
  "area.zones": "Pick zones",
  "area.pipe": "Broken pipe",
  "area.draw.help": "Click the map to add corners. Enter or double-click finishes, Esc cancels, Backspace removes the last corner. Keyboard: focus the map, move with the arrow keys, Space adds a corner at the cross.",
  "area.draw.points": "{count, plural, one {# corner} other {# corners}}",
  "area.draw.finish": "Finish",
  "area.draw.cancel": "Cancel drawing",
  "area.draw.few": "A polygon needs at least 3 corners.",
  "area.draw.cancelled": "Drawing cancelled.",
  "area.zones.apply": "Use selected zones",
  "area.zones.none": "Select at least one zone.",
  "area.zones.help": "Tick zones here, or click them on the map.",
  "area.pipe.id": "Pipe id",
  "area.pipe.lookup": "Look up",
  "area.pipe.help": "Type a pipe id, or click a pipe on the map.",
  "area.pipe.inoperable": "Valves that cannot be closed (comma-separated, optional)",
  "area.pipe.isolate": "Isolate this pipe",
  "area.pipe.ifbroken": "A break on {pipe}: close {valves, plural, one {# valve} other {# valves}}; {pipes, plural, one {# pipe runs} other {# pipes run}} dry; {households, plural, one {# household} other {# households}} affected.",
  "area.result": "Affected households",
  "area.by.priority": "By priority",
  "area.by.language": "By language",
  "area.valves": "Valves to close",
  "area.dry": "{count, plural, one {# pipe} other {# pipes}} without water",
  "area.updated": "Area updated: {count, plural, one {# household} other {# households}}.",
  "area.repair": "Repair the polygon and use it",
  "area.selfintersecting": "The polygon crosses itself.",
  "notice.list": "Notices",
  "notice.none": "No notices yet.",
  "notice.compose": "Compose a notice",
  "notice.template": "Template",
  "notice.channels": "Channels",
  "notice.audience": "Audience",
  "notice.audience.all": "Everyone in the area",
  "notice.audience.priority": "Only priority households",
  "notice.facts.area": "Where (as households know it)",
  "notice.facts.note": "Extra note (optional)",
  "notice.facts.advisory": "Advisory",
  "notice.facts.etr": "Estimated restoration (ETR)",
  "notice.facts.start": "Planned work starts",
  "notice.facts.end": "Planned work ends",
  "notice.preview": "Preview",
  "notice.previews": "Rendered text",
  "notice.audience.count": "{households, plural, one {# household} other {# households}}, {deliveries, plural, one {# message} other {# messages}}",
  "notice.unreachable": "{count, plural, one {# household cannot} other {# households cannot}} be reached on these channels",
  "notice.optedout": "opted out: {list}",
  "notice.unconfirmed": "priority claimed by residents, not yet confirmed: {list}",
  "notice.needs.skipped": "not called (deaf or hard of hearing): {count}",
  "notice.fallback": "No {requested} template: these households get {used}",
  "notice.chars": "{count, plural, one {# character} other {# characters}}",
  "notice.segments": "{count, plural, one {# SMS part} other {# SMS parts}}",
  "notice.approve": "Read and approve…",
  "notice.approve.title": "Send notice {id}?",
  "notice.approve.body": "This contacts {households, plural, one {# household} other {# households}} with {deliveries, plural, one {# message} other {# messages}} ({channels}). It cannot be called back.",
  "notice.approve.drill": "This is a DRILL: messages go to the drill carrier only.",
  "notice.approve.yes": "Send to {households, plural, one {# household} other {# households}}",
  "notice.approved": "Notice {id} approved: {deliveries, plural, one {# message} other {# messages}} released.",
  "notice.waits": "Waits for the end of quiet hours: sends at {time}.",
  "notice.status": "Status",
  "notice.by": "by {name}",
  // --- notice safety (issue 17): facts, previews, approval, held and stale notices ---
  "notice.where.en": "Where, in English",
  "notice.where.zh": "Where, in Chinese",
  "notice.where.example.en": "e.g. Maple St between 1st and 5th Ave",
  "notice.where.example.zh": "例如：枫树街第一至第五大道之间",
  "notice.where.hint": "Households read this. Left empty: the incident's area description, or the names of its zones.",
  "notice.where.save": "Use for every notice of this incident",
  "notice.where.saved": "Area description saved: notices say it for \"where\".",
  "notice.where.empty": "Write where, in at least one language, first.",
  "notice.preview.unsaved": "A preview: nothing is stored or sent.",
  "notice.plan": "Plan this notice for approval",
  "notice.planned": "Notice {id} is planned. Read every text before you approve it.",
  "notice.new": "Compose another notice",
  "notice.missing.area": "No public description of the area: write where (above) or choose zones.",
  "notice.text.households": "{count} households",
  "notice.approve.texts": "Exactly what goes out",
  "notice.approve.two": "Two people approve this notice ({required}). Approved so far by: {names}.",
  "notice.approval.recorded": "Approval of {id} recorded ({count} of {required}): a second person must approve.",
  "notice.not.planned": "Notice {id} is {status}.",
  "notice.stale": "stale",
  "notice.replan": "Plan again…",
  "notice.replan.title": "Plan notice {id} again?",
  "notice.replan.diff": "Households: {before} when planned, {after} now.",
  "notice.replan.yes": "Plan again",
  "notice.replanned": "Planned again: {old} is replaced.",
  "notice.held.why": "Held: {facts} missing.",
  "notice.stale.why": "Stale: the {facts} changed after it was planned.",
  "notice.superseded": "Replaced by {id}",
  "fact.area": "area",
  "fact.area_description": "area description",
  "fact.etr": "ETR",
  "fact.advisory": "advisory",
  "event.area_described": "Area described",
  "event.notice_held": "Notice held",
  "event.notice_approval_recorded": "Notice approval recorded",
  "describe.area_described": "area described for households: {texts}",
  "event.made_public": "Shown to residents",
  "event.made_internal": "Taken off the public page",
  "describe.made_public": "residents see it on the public page and feeds",
  "describe.made_public_notice": "residents see it on the public page and feeds (notice {id} approved)",
  "describe.made_internal": "residents no longer see it",
  "describe.notice_held": "notice {id} held: {facts} missing",
  "describe.notice_approval_recorded": "notice {id}: approval {count} of {required} by {by}",
  // --- end of notice safety ---
  "deliveries.title": "Deliveries",
  "deliveries.none": "Nothing sent yet.",
  "deliveries.done": "delivered",
  "deliveries.flight": "on the way",
  "deliveries.failed": "failed",
  "deliveries.waiting": "waiting",
  "deliveries.summary": "{done} {outcome} · {flight} on the way · {failed} failed · {total, plural, one {# message} other {# messages}} in all",
  "playbook.none": "No playbook runs for this incident.",
  "playbook.stages": "Stages",
  "playbook.current": "current",
  "playbook.enter": "Move here…",
  "playbook.enter.title": "Move {id} to stage “{stage}”?",
  "playbook.enter.body": "The stage's steps run when it is entered.",
  "playbook.moved": "Moved to stage {stage}.",
  "playbook.slas": "Deadlines (SLA)",
  "playbook.etr": "ETR",
  "playbook.etr.none": "not set",
  "playbook.etr.set": "Set ETR",
  "playbook.advisory": "Advisory in force",
  "playbook.timers": "Pending timers",
  "sla.due": "due {time}",
  "sla.left": "{time} left",
  "sla.over": "BREACHED {time} ago",
  "sla.met": "met {time}",
  "sla.pending": "not started",
  "log.status": "Move status",
  "log.status.done": "Status is now {status}.",
  "log.note": "Add a note",
  "log.note.add": "Add note",
  "log.note.added": "Note added.",
  "log.handover": "Hand over",
  "log.handover.to": "To (name)",
  "log.handover.submit": "Hand over",
  "log.handover.done": "Handed over to {name}.",
  "log.recent": "Recent events",
  "board.title": "Command board",
  "board.open": "{count, plural, one {# open incident} other {# open incidents}}",
  "board.households": "{count, plural, one {# household} other {# households}} affected",
  "board.breaches": "{count, plural, one {# deadline} other {# deadlines}} breached",
  "board.none": "No open incidents.",
  "board.updated": "updated {time}",
  "review.title": "Review",
  "review.filter.status": "Show",
  "review.search": "Search incidents",
  "review.select": "Select an incident to review its timeline.",
  "review.integrity.ok": "Integrity verified: {events, plural, one {# event} other {# events}}, hash chain intact (head #{seq}).",
  "review.integrity.bad": "INTEGRITY CHECK FAILED: the timeline was altered.",
  "review.export": "Export",
  "review.export.csv": "Timeline (CSV)",
  "review.export.cap": "CAP 1.2 alerts (XML)",
  "review.export.report": "After-action report (HTML)",
  "review.export.json": "Timeline (JSON)",
  "review.downloaded": "Saved {file}.",
  "review.filter.type": "Event type",
  "review.filter.actor": "Actor",
  "review.filter.text": "Text contains",
  "review.shown": "{shown} of {total, plural, one {# event} other {# events}}",
  "review.col.seq": "#",
  "review.col.time": "Time",
  "review.col.type": "Event",
  "review.col.actor": "Actor",
  "review.col.what": "What happened",
  "map.label": "Map of the service area",
  "map.zones.pz": "Pressure zones",
  "map.zones.dma": "District metered areas",
  "map.pipes": "Pipes",
  "map.reports": "Reports",
  "map.layers": "Map layers",
  "map.fit": "Fit to service area",
  "priority.medical": "medical",
  "priority.critical_facility": "critical facility",
  "priority.vulnerable": "vulnerable",
  "priority.none": "no priority",
  "kind.main_break": "Main break",
  "kind.unplanned_outage": "Unplanned outage",
  "kind.planned_outage": "Planned outage",
  "kind.low_pressure": "Low pressure",
  "kind.contamination": "Contamination",
  "kind.gas_leak": "Gas leak",
  "kind.heat_outage": "Heat outage",
  "utility.water": "Water",
  "utility.gas": "Gas",
  "utility.heat": "District heating",
  "severity.low": "Low",
  "severity.medium": "Medium",
  "severity.high": "High",
  "severity.critical": "Critical",
  "status.declared": "Declared",
  "status.active": "Active",
  "status.restoring": "Restoring",
  "status.monitoring": "Monitoring",
  "status.closed": "Closed",
  "status.cancelled": "Cancelled",
  "status.open": "Open",
  "status.all": "All",
  "channel.sms": "SMS",
  "channel.voice": "Voice",
  "channel.push": "App push",
  "channel.email": "Email",
  "role.dispatcher": "dispatcher",
  "role.command": "command",
  "role.reviewer": "reviewer",
  "role.admin": "admin",
  "advisory.none": "None",
  "advisory.boil_water": "Boil water",
  "advisory.do_not_drink": "Do not drink",
  "advisory.do_not_use": "Do not use",
  "template.main_break": "Main break",
  "template.unplanned_outage": "Unplanned outage",
  "template.planned_outage": "Planned outage",
  "template.low_pressure": "Low pressure",
  "template.boil_water": "Boil-water advisory",
  "template.do_not_drink": "Do-not-drink advisory",
  "template.do_not_use": "Do-not-use advisory",
  "template.gas_leak": "Gas leak",
  "template.heat_outage": "Heat outage",
  "template.etr_update": "ETR update",
  "template.restored": "Service restored",
  "template.advisory_lifted": "Advisory lifted",
  "template.follow_up": "Follow-up",
  "event.declared": "Declared",
  "event.status_changed": "Status changed",
  "event.note_added": "Note",
  "event.handed_over": "Handed over",
  "event.severity_changed": "Severity changed",
  "event.report_linked": "Report linked",
  "event.confirmed": "Confirmed",
  "event.area_changed": "Area changed",
  "event.stage_entered": "Stage entered",
  "event.notice_planned": "Notice planned",
  "event.notice_approved": "Notice approved",
  "event.notice_sent": "Notice sent",
  "event.sla_started": "SLA started",
  "event.sla_met": "SLA met",
  "event.sla_breached": "SLA breached",
  "event.etr_set": "ETR set",
  "event.etr_requested": "ETR requested",
  "event.advisory_set": "Advisory set",
  "event.advisory_lifted": "Advisory lifted",
  "event.page_sent": "Page sent",
  "describe.declared": "declared {kind} ({utility}), severity {severity}: {title}",
  "describe.status_changed": "status {from} → {to}",
  "describe.handed_over": "handed over from {from} to {to}",
  "describe.severity_changed": "severity {from} → {to}",
  "describe.report_linked": "report {report} linked",
  "describe.area_changed": "area {op} ({method}): households {before} → {after}",
  "describe.stage_entered": "stage {stage}",
  "describe.notice_planned": "notice {id} planned: {template}, {households, plural, one {# household} other {# households}}",
  "describe.notice_approved": "notice {id} approved: {deliveries, plural, one {# message} other {# messages}}",
  "describe.notice_sent": "notice {id} handed to the carriers",
  "describe.sla": "SLA {sla}",
  "describe.etr_set": "ETR {etr}",
  "describe.advisory_set": "advisory {advisory}",
  "describe.page_sent": "paged {rota}: {text}",
  "op.replace": "replaced",
  "op.add": "added",
  "op.remove": "removed",
  "method.drawn": "drawn",
  "method.zones": "zones",
  "method.around": "radius",
  "method.isolation": "isolation of pipe",
  // --- issue 17 (console for a night shift): plurals above use {n, plural, one {…} other {…}};
  // every status, delivery state and event type the server emits has a label here
  // (tests/unit/test_console_i18n.py checks it against the server's sources).
  "deliveries.done.push": "sent (no delivery receipt)",
  "deliveries.done.voice": "answered",
  "deliveries.of": "of {total, plural, one {# message} other {# messages}}",
  "deliveries.push.note": "App push has no delivery receipt: sent is the last word.",
  "board.cards": "Open incidents",
  "board.map": "Areas of the open incidents",
  "area.pipe.inoperable.applied": "Without the valves that cannot be closed: {valves}",
  "common.drill.title": "Drill: an exercise, notices go to the drill carrier only",
  "common.dismiss": "Dismiss",
  "dispatch.households": "{count, plural, one {# household} other {# households}}",
  "event.household_reply": "Household replied",
  "describe.household_reply": "reply by {channel} from {account}: {text}",
  "status.unassigned": "Unassigned",
  "status.linked": "Linked",
  "status.dismissed": "Dismissed",
  "notice_status.planning": "Being planned",
  "notice_status.planned": "Planned",
  "notice_status.approved": "Approved",
  "notice_status.held": "Held: a fact is missing",
  "notice_status.superseded": "Replaced",
  "notice_status.cancelled": "Cancelled",
  "delivery.draft": "draft",
  "delivery.planned": "waiting",
  "delivery.queued": "queued",
  "delivery.claimed": "being sent",
  "delivery.sending": "being sent",
  "delivery.retry": "to retry",
  "delivery.unknown": "outcome unknown",
  "delivery.accepted": "accepted by the carrier",
  "delivery.sent": "sent",
  "delivery.delivered": "delivered",
  "delivery.undelivered": "undelivered",
  "delivery.failed": "failed",
  "delivery.ringing": "ringing",
  "delivery.answered": "answered",
  "delivery.completed": "call completed",
  "delivery.no_answer": "no answer",
  "delivery.busy": "busy",
  "delivery.confirmed": "confirmed by the household",
  "delivery.cancelled": "cancelled",
  "source.field_crew": "field crew",
  "source.scada": "SCADA",
  "source.call_centre": "call centre",
  "source.lab": "laboratory",
  "source.lims": "laboratory (LIMS)",
  "asset.pipe": "pipe",
  "asset.valve": "valve",
  "asset.sample_tap": "sample tap",
};

const zh = {
  "app.name": "事件指挥台",
  "app.skip": "跳到正文",
  "nav.dispatch": "调度",
  "nav.board": "指挥看板",
  "nav.review": "复盘",
  "nav.main": "视图",
  "lang.label": "语言",
  "login.title": "登录",
  "login.token": "访问令牌",
  "login.help": "粘贴管理员发给你的令牌（incident tokens add NAME --role ROLE）。",
  "login.submit": "登录",
  "login.bad": "令牌未被接受：{message}",
  "boot.title": "无法连接服务",
  "boot.wait": "无法连接服务，{seconds} 秒后重试（第 {attempt} 次）。{message}",
  "boot.now": "无法连接服务，正在重试（第 {attempt} 次）…",
  "boot.retry": "立即重试",
  "boot.other": "使用其他令牌登录",
  "user.signout": "退出",
  "user.as": "{name}（{role}）",
  "live.connecting": "正在连接…",
  "live.live": "实时",
  "live.down": "离线",
  "live.lost": "实时更新于 {time} 中断，数据可能已过时。{seconds} 秒后重连（第 {attempt} 次）…",
  "live.reconnecting": "实时更新于 {time} 中断，正在重连…",
  "live.back": "实时更新已于 {time} 恢复，数据已刷新。",
  "common.loading": "加载中…",
  "common.cancel": "取消",
  "common.close": "关闭",
  "common.none": "无",
  "common.reason": "原因（可选）",
  "common.reason.required": "原因",
  "common.error": "错误：{message}",
  "common.done": "完成",
  "common.all": "全部",
  "common.households": "户数",
  "common.unknown": "未知",
  "dispatch.title": "调度",
  "dispatch.triage": "待处理报告（{count}）",
  "dispatch.open": "进行中事件（{count}）",
  "dispatch.new": "新建事件",
  "dispatch.empty.reports": "没有待处理的报告。",
  "dispatch.empty.incidents": "没有进行中的事件。",
  "dispatch.select": "在左侧选择一个事件，从报告宣布事件，或新建一个。",
  "report.declare": "宣布事件",
  "report.link": "关联…",
  "report.dismiss": "驳回…",
  "report.link.title": "将报告 {id} 关联到事件",
  "report.link.to": "事件",
  "report.dismiss.title": "驳回报告 {id}",
  "report.declared": "已根据报告宣布 {id}。",
  "report.new": "新报告：{summary}",
  "report.observed": "发现于 {time}",
  "report.show": "在地图上显示",
  "declare.title": "宣布新事件",
  "declare.kind": "类型",
  "declare.utility": "行业",
  "declare.title.field": "标题",
  "declare.severity": "严重程度",
  "declare.drill": "演练（通知只发往演练运营商）",
  "declare.submit": "宣布",
  "declare.done": "已宣布 {id}，请设定影响范围。",
  "incident.owner": "负责人",
  "incident.status": "状态",
  "incident.severity": "严重程度",
  "incident.stage": "阶段",
  "incident.households": "受影响户数",
  "incident.declared": "宣布时间",
  "incident.drill": "演练",
  "incident.awaiting": "待确认",
  "incident.confirm": "确认事件",
  "incident.noarea": "尚未设定范围",
  "incident.public": "居民",
  "incident.public.yes": "已在公开页面显示",
  "incident.public.no": "仅内部可见",
  "incident.public.drill": "演练，不公开",
  "incident.public.show": "向居民公开",
  "incident.public.hide": "从公开页面撤下",
  "incident.public.page": "公开页面",
  "tab.area": "范围",
  "tab.notice": "通知",
  "tab.playbook": "预案",
  "tab.log": "记录",
  "area.op": "操作",
  "area.op.replace": "替换范围",
  "area.op.add": "加入范围",
  "area.op.remove": "从范围中去除",
  "area.draw": "绘制多边形",
  "area.zones": "选择分区",
  "area.pipe": "爆管",
  "area.draw.help": "点击地图添加顶点。回车或双击完成，Esc 取消，退格删除上一个顶点。键盘操作：聚焦地图，用方向键移动，空格在十字处添加顶点。",
  "area.draw.points": "{count} 个顶点",
  "area.draw.finish": "完成",
  "area.draw.cancel": "取消绘制",
  "area.draw.few": "多边形至少需要 3 个顶点。",
  "area.draw.cancelled": "已取消绘制。",
  "area.zones.apply": "使用所选分区",
  "area.zones.none": "请至少选择一个分区。",
  "area.zones.help": "在此勾选分区，或在地图上点击分区。",
  "area.pipe.id": "管段编号",
  "area.pipe.lookup": "查询",
  "area.pipe.help": "输入管段编号，或在地图上点击管段。",
  "area.pipe.inoperable": "无法关闭的阀门（逗号分隔，可选）",
  "area.pipe.isolate": "隔离此管段",
  "area.pipe.ifbroken": "{pipe} 爆管：需关闭 {valves} 个阀门；{pipes} 段管道停水；影响 {households} 户。",
  "area.result": "受影响户数",
  "area.by.priority": "按优先级",
  "area.by.language": "按语言",
  "area.valves": "需关闭的阀门",
  "area.dry": "{count} 段管道停水",
  "area.updated": "范围已更新：{count} 户。",
  "area.repair": "修复多边形并使用",
  "area.selfintersecting": "多边形自相交。",
  "notice.list": "通知",
  "notice.none": "尚无通知。",
  "notice.compose": "编写通知",
  "notice.template": "模板",
  "notice.channels": "渠道",
  "notice.audience": "对象",
  "notice.audience.all": "范围内所有住户",
  "notice.audience.priority": "仅优先住户",
  "notice.facts.area": "地点（住户熟悉的说法）",
  "notice.facts.note": "附加说明（可选）",
  "notice.facts.advisory": "用水警示",
  "notice.facts.etr": "预计恢复时间",
  "notice.facts.start": "计划施工开始",
  "notice.facts.end": "计划施工结束",
  "notice.preview": "预览",
  "notice.previews": "生成的文本",
  "notice.audience.count": "{households} 户，{deliveries} 条消息",
  "notice.unreachable": "{count} 户无法通过这些渠道联系",
  "notice.optedout": "已退订：{list}",
  "notice.unconfirmed": "居民自报、尚未确认的优先级：{list}",
  "notice.needs.skipped": "不拨打电话（聋人或听障）：{count} 户",
  "notice.fallback": "没有 {requested} 模板：这些住户将收到 {used} 版本",
  "notice.chars": "{count} 个字符",
  "notice.segments": "{count} 条短信",
  "notice.approve": "阅读并批准…",
  "notice.approve.title": "发送通知 {id}？",
  "notice.approve.body": "将联系 {households} 户，共 {deliveries} 条消息（{channels}）。发出后无法撤回。",
  "notice.approve.drill": "这是演练：消息只发往演练运营商。",
  "notice.approve.yes": "发送给 {households} 户",
  "notice.approved": "通知 {id} 已批准：{deliveries} 条消息已放行。",
  "notice.waits": "等待免打扰时段结束：将于 {time} 发送。",
  "notice.status": "状态",
  "notice.by": "由 {name}",
  // --- notice safety (issue 17): facts, previews, approval, held and stale notices ---
  "notice.where.en": "地点（英文）",
  "notice.where.zh": "地点（中文）",
  "notice.where.example.en": "e.g. Maple St between 1st and 5th Ave",
  "notice.where.example.zh": "例如：枫树街第一至第五大道之间",
  "notice.where.hint": "住户会读到这段文字。留空时使用事件的范围描述或分区名称。",
  "notice.where.save": "用于本事件的所有通知",
  "notice.where.saved": "范围描述已保存：通知中的“地点”将使用它。",
  "notice.where.empty": "请先至少用一种语言填写地点。",
  "notice.preview.unsaved": "仅为预览：不保存，也不发送。",
  "notice.plan": "拟定此通知，等待批准",
  "notice.planned": "通知 {id} 已拟定。批准前请逐条阅读全部文本。",
  "notice.new": "再编写一条通知",
  "notice.missing.area": "没有面向公众的范围描述：请在上方填写地点，或选择分区。",
  "notice.text.households": "{count} 户",
  "notice.approve.texts": "将发出的全部文本",
  "notice.approve.two": "此通知需 {required} 人批准。目前已批准：{names}。",
  "notice.approval.recorded": "已记录对 {id} 的批准（{count}/{required}）：还需另一人批准。",
  "notice.not.planned": "通知 {id} 的状态为{status}。",
  "notice.stale": "已过期",
  "notice.replan": "重新拟定…",
  "notice.replan.title": "重新拟定通知 {id}？",
  "notice.replan.diff": "户数：拟定时 {before}，现在 {after}。",
  "notice.replan.yes": "重新拟定",
  "notice.replanned": "已重新拟定：{old} 已被取代。",
  "notice.held.why": "暂缓：缺少{facts}。",
  "notice.stale.why": "已过期：拟定后{facts}有变化。",
  "notice.superseded": "已由 {id} 取代",
  "fact.area": "范围",
  "fact.area_description": "范围描述",
  "fact.etr": "预计恢复时间",
  "fact.advisory": "用水警示",
  "event.area_described": "范围已描述",
  "event.notice_held": "通知暂缓",
  "event.notice_approval_recorded": "已记录通知批准",
  "describe.area_described": "面向住户的范围描述：{texts}",
  "event.made_public": "已向居民公开",
  "event.made_internal": "已从公开页面撤下",
  "describe.made_public": "居民可在公开页面和信息源中看到",
  "describe.made_public_notice": "居民可在公开页面和信息源中看到（通知 {id} 已批准）",
  "describe.made_internal": "居民不再看到此事件",
  "describe.notice_held": "通知 {id} 暂缓：缺少{facts}",
  "describe.notice_approval_recorded": "通知 {id}：{by} 批准（{count}/{required}）",
  // --- end of notice safety ---
  "deliveries.title": "送达情况",
  "deliveries.none": "尚未发送。",
  "deliveries.done": "已送达",
  "deliveries.flight": "发送中",
  "deliveries.failed": "失败",
  "deliveries.waiting": "等待中",
  "deliveries.summary": "{outcome} {done} · 发送中 {flight} · 失败 {failed} · 共 {total} 条消息",
  "playbook.none": "此事件没有运行预案。",
  "playbook.stages": "阶段",
  "playbook.current": "当前",
  "playbook.enter": "转到此阶段…",
  "playbook.enter.title": "将 {id} 转到阶段“{stage}”？",
  "playbook.enter.body": "进入阶段时会执行该阶段的步骤。",
  "playbook.moved": "已转到阶段 {stage}。",
  "playbook.slas": "时限（SLA）",
  "playbook.etr": "预计恢复",
  "playbook.etr.none": "未设定",
  "playbook.etr.set": "设定预计恢复时间",
  "playbook.advisory": "生效中的警示",
  "playbook.timers": "待触发的定时器",
  "sla.due": "截止 {time}",
  "sla.left": "剩余 {time}",
  "sla.over": "已超时 {time}",
  "sla.met": "已于 {time} 达成",
  "sla.pending": "未开始",
  "log.status": "变更状态",
  "log.status.done": "状态已变为 {status}。",
  "log.note": "添加备注",
  "log.note.add": "添加备注",
  "log.note.added": "已添加备注。",
  "log.handover": "移交",
  "log.handover.to": "移交给（姓名）",
  "log.handover.submit": "移交",
  "log.handover.done": "已移交给 {name}。",
  "log.recent": "最近事件",
  "board.title": "指挥看板",
  "board.open": "{count} 个进行中事件",
  "board.households": "影响 {count} 户",
  "board.breaches": "{count} 项时限已超时",
  "board.none": "没有进行中的事件。",
  "board.updated": "更新于 {time}",
  "review.title": "复盘",
  "review.filter.status": "显示",
  "review.search": "搜索事件",
  "review.select": "选择一个事件查看其时间线。",
  "review.integrity.ok": "完整性已验证：{events} 个事件，哈希链完好（最新 #{seq}）。",
  "review.integrity.bad": "完整性校验失败：时间线被改动过。",
  "review.export": "导出",
  "review.export.csv": "时间线（CSV）",
  "review.export.cap": "CAP 1.2 警报（XML）",
  "review.export.report": "事后报告（HTML）",
  "review.export.json": "时间线（JSON）",
  "review.downloaded": "已保存 {file}。",
  "review.filter.type": "事件类型",
  "review.filter.actor": "操作者",
  "review.filter.text": "包含文字",
  "review.shown": "显示 {shown} / {total} 个事件",
  "review.col.seq": "#",
  "review.col.time": "时间",
  "review.col.type": "事件",
  "review.col.actor": "操作者",
  "review.col.what": "经过",
  "map.label": "供水服务区地图",
  "map.zones.pz": "压力分区",
  "map.zones.dma": "计量分区（DMA）",
  "map.pipes": "管网",
  "map.reports": "报告",
  "map.layers": "地图图层",
  "map.fit": "缩放到服务区",
  "priority.medical": "医疗依赖",
  "priority.critical_facility": "重要设施",
  "priority.vulnerable": "弱势住户",
  "priority.none": "无优先级",
  "kind.main_break": "主管爆裂",
  "kind.unplanned_outage": "计划外停供",
  "kind.planned_outage": "计划停供",
  "kind.low_pressure": "水压不足",
  "kind.contamination": "水质污染",
  "kind.gas_leak": "燃气泄漏",
  "kind.heat_outage": "供热中断",
  "utility.water": "供水",
  "utility.gas": "燃气",
  "utility.heat": "集中供热",
  "severity.low": "低",
  "severity.medium": "中",
  "severity.high": "高",
  "severity.critical": "危急",
  "status.declared": "已宣布",
  "status.active": "处置中",
  "status.restoring": "恢复中",
  "status.monitoring": "观察中",
  "status.closed": "已关闭",
  "status.cancelled": "已取消",
  "status.open": "进行中",
  "status.all": "全部",
  "channel.sms": "短信",
  "channel.voice": "语音电话",
  "channel.push": "应用推送",
  "channel.email": "电子邮件",
  "role.dispatcher": "调度员",
  "role.command": "指挥",
  "role.reviewer": "复盘员",
  "role.admin": "管理员",
  "advisory.none": "无",
  "advisory.boil_water": "煮沸后饮用",
  "advisory.do_not_drink": "禁止饮用",
  "advisory.do_not_use": "禁止使用",
  "template.main_break": "主管爆裂",
  "template.unplanned_outage": "计划外停供",
  "template.planned_outage": "计划停供",
  "template.low_pressure": "水压不足",
  "template.boil_water": "煮沸饮用警示",
  "template.do_not_drink": "禁止饮用警示",
  "template.do_not_use": "禁止使用警示",
  "template.gas_leak": "燃气泄漏",
  "template.heat_outage": "供热中断",
  "template.etr_update": "恢复时间更新",
  "template.restored": "已恢复供应",
  "template.advisory_lifted": "警示解除",
  "template.follow_up": "回访",
  "event.declared": "宣布",
  "event.status_changed": "状态变更",
  "event.note_added": "备注",
  "event.handed_over": "移交",
  "event.severity_changed": "严重程度变更",
  "event.report_linked": "关联报告",
  "event.confirmed": "确认",
  "event.area_changed": "范围变更",
  "event.stage_entered": "进入阶段",
  "event.notice_planned": "通知已拟定",
  "event.notice_approved": "通知已批准",
  "event.notice_sent": "通知已发出",
  "event.sla_started": "时限开始",
  "event.sla_met": "时限达成",
  "event.sla_breached": "时限超时",
  "event.etr_set": "设定预计恢复",
  "event.etr_requested": "请求预计恢复时间",
  "event.advisory_set": "发布警示",
  "event.advisory_lifted": "解除警示",
  "event.page_sent": "已呼叫",
  "describe.declared": "宣布{kind}（{utility}），严重程度{severity}：{title}",
  "describe.status_changed": "状态 {from} → {to}",
  "describe.handed_over": "由 {from} 移交给 {to}",
  "describe.severity_changed": "严重程度 {from} → {to}",
  "describe.report_linked": "关联报告 {report}",
  "describe.area_changed": "范围{op}（{method}）：户数 {before} → {after}",
  "describe.stage_entered": "阶段 {stage}",
  "describe.notice_planned": "拟定通知 {id}：{template}，{households} 户",
  "describe.notice_approved": "批准通知 {id}：{deliveries} 条消息",
  "describe.notice_sent": "通知 {id} 已交给运营商",
  "describe.sla": "时限 {sla}",
  "describe.etr_set": "预计恢复 {etr}",
  "describe.advisory_set": "警示 {advisory}",
  "describe.page_sent": "呼叫 {rota}：{text}",
  "op.replace": "替换",
  "op.add": "加入",
  "op.remove": "去除",
  "method.drawn": "手绘",
  "method.zones": "分区",
  "method.around": "半径",
  "method.isolation": "隔离管段",
  // --- issue 17 (console for a night shift)
  "deliveries.done.push": "已发出（无送达回执）",
  "deliveries.done.voice": "已接听",
  "deliveries.of": "共 {total} 条消息",
  "deliveries.push.note": "应用推送没有送达回执：已发出即为最终状态。",
  "board.cards": "进行中事件",
  "board.map": "进行中事件的范围",
  "area.pipe.inoperable.applied": "已排除无法关闭的阀门：{valves}",
  "common.drill.title": "演练：通知只发往演练运营商",
  "common.dismiss": "关闭",
  "dispatch.households": "{count} 户",
  "event.household_reply": "住户回复",
  "describe.household_reply": "住户 {account} 通过{channel}回复：{text}",
  "status.unassigned": "未处理",
  "status.linked": "已关联",
  "status.dismissed": "已驳回",
  "notice_status.planning": "拟定中",
  "notice_status.planned": "待批准",
  "notice_status.approved": "已批准",
  "notice_status.held": "暂缓：缺少信息",
  "notice_status.superseded": "已取代",
  "notice_status.cancelled": "已取消",
  "delivery.draft": "草稿",
  "delivery.planned": "等待中",
  "delivery.queued": "已排队",
  "delivery.claimed": "发送中",
  "delivery.sending": "发送中",
  "delivery.retry": "待重试",
  "delivery.unknown": "结果未知",
  "delivery.accepted": "运营商已接收",
  "delivery.sent": "已发出",
  "delivery.delivered": "已送达",
  "delivery.undelivered": "未送达",
  "delivery.failed": "失败",
  "delivery.ringing": "振铃中",
  "delivery.answered": "已接听",
  "delivery.completed": "通话结束",
  "delivery.no_answer": "无人接听",
  "delivery.busy": "占线",
  "delivery.confirmed": "住户已确认",
  "delivery.cancelled": "已取消",
  "source.field_crew": "现场人员",
  "source.scada": "SCADA",
  "source.call_centre": "呼叫中心",
  "source.lab": "化验室",
  "source.lims": "化验室（LIMS）",
  "asset.pipe": "管段",
  "asset.valve": "阀门",
  "asset.sample_tap": "取样龙头",
};

export const DICTIONARIES = { en, "zh-CN": zh };
export const LANGUAGES = [["en", "English"], ["zh-CN", "中文"]];
const STORE_KEY = "incident.lang";

let lang = (() => {
  const saved = localStorage.getItem(STORE_KEY);
  if (saved && DICTIONARIES[saved]) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
})();
const listeners = new Set();

export function getLang() {
  return lang;
}

export function setLang(next) {
  if (!DICTIONARIES[next] || next === lang) return;
  lang = next;
  localStorage.setItem(STORE_KEY, next);
  document.documentElement.lang = next;
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * The text for `key` with {name} placeholders filled in. Numbers given as numbers are
 * formatted for the language (Intl.NumberFormat); `{name, plural, one {# item} other {# items}}`
 * picks the form with Intl.PluralRules (`#` is the formatted number). A count passed already
 * formatted ("1,234") is read back, so callers may pass either.
 */
export function t(key, params = {}) {
  const text = DICTIONARIES[lang][key] ?? en[key] ?? key;
  return fill(expandPlurals(text, params), params);
}

function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? shown(params[name]) : m));
}

function shown(value) {
  return typeof value === "number" ? number(value) : String(value);
}

function asNumber(value) {
  if (typeof value === "number") return value;
  const n = Number(String(value).replace(/[,\s\u00a0\u202f]/g, ""));
  return Number.isFinite(n) ? n : null;
}

/** Replace each {name, plural, one {…} other {…}} block by its form for params[name]. */
function expandPlurals(text, params) {
  let out = "";
  let i = 0;
  const open = /\{(\w+), plural,/g;
  for (let m = open.exec(text); m; m = open.exec(text)) {
    out += text.slice(i, m.index);
    const forms = {};
    let j = m.index + m[0].length;
    while (j < text.length) {
      while (text[j] === " ") j += 1;
      if (text[j] === "}") break;
      const brace = text.indexOf("{", j);
      const name = text.slice(j, brace).trim();
      let depth = 1;
      let k = brace + 1;
      for (; k < text.length && depth; k += 1) {
        if (text[k] === "{") depth += 1;
        else if (text[k] === "}") depth -= 1;
      }
      forms[name] = text.slice(brace + 1, k - 1);
      j = k;
    }
    const raw = params[m[1]];
    const n = raw === undefined ? null : asNumber(raw);
    const form = n === null ? forms.other : forms[`=${n}`] ?? forms[plurals().select(n)] ?? forms.other;
    out += (form ?? "").replaceAll("#", raw === undefined ? "#" : shown(raw));
    i = j + 1;
    open.lastIndex = i;
  }
  return out + text.slice(i);
}

const pluralRules = {};
function plurals() {
  pluralRules[lang] ??= new Intl.PluralRules(lang);
  return pluralRules[lang];
}

/** A label for an enum value, e.g. label("kind", "main_break"). */
export function label(group, value) {
  if (value === null || value === undefined || value === "") return t("common.none");
  const key = `${group}.${value}`;
  return key in en ? t(key) : String(value).replaceAll("_", " ");
}

export function number(n) {
  if (n === null || n === undefined) return "–";
  return new Intl.NumberFormat(lang).format(n);
}

export function dateTime(iso) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

export function dateTimeSeconds(iso) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" }).format(new Date(iso));
}

export function time(iso, seconds = false) {
  if (!iso) return "–";
  const opts = seconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(lang, opts).format(iso instanceof Date ? iso : new Date(iso));
}

/** 1:02:03 or 4:05 for a duration in milliseconds (sign dropped). */
export function duration(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return hh > 0 ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

export function relative(iso) {
  if (!iso) return "–";
  const diff = (new Date(iso).getTime() - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  const abs = Math.abs(diff);
  if (abs < 60) return rtf.format(Math.round(diff), "second");
  if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), "hour");
  return rtf.format(Math.round(diff / 86400), "day");
}

/** Language tags as their own names in the UI language (zh-CN -> 中文（中国） / Chinese (China)). */
export function languageName(tag) {
  try {
    return new Intl.DisplayNames([lang], { type: "language" }).of(tag) || tag;
  } catch {
    return tag;
  }
}

export function list(items) {
  return new Intl.ListFormat(lang, { style: "short", type: "conjunction" }).format(items);
}

/** One line about a timeline event, in the UI language. */
export function describeEvent(e) {
  const d = e.data || {};
  switch (e.type) {
    case "declared":
      return t("describe.declared", { kind: label("kind", d.kind), utility: label("utility", d.utility), severity: label("severity", d.severity), title: d.title });
    case "status_changed":
      return t("describe.status_changed", { from: label("status", d.from), to: label("status", d.to) }) + reason(d);
    case "note_added":
      return String(d.text ?? "");
    case "handed_over":
      return t("describe.handed_over", { from: d.from || t("common.none"), to: d.to }) + reason(d);
    case "severity_changed":
      return t("describe.severity_changed", { from: label("severity", d.from), to: label("severity", d.to) }) + reason(d);
    case "report_linked":
      return t("describe.report_linked", { report: d.report_id }) + (d.reason ? ` (${d.reason})` : "");
    case "area_changed": {
      const part = d.part || {};
      let method = label("method", part.method);
      if (part.method === "isolation") method = `${method} ${part.pipe}`;
      if (part.method === "zones") method = `${method} ${(part.zones || []).join(", ")}`;
      return t("describe.area_changed", { op: label("op", d.op || "replace"), method, before: number(d.households_before), after: number(d.households_after) });
    }
    case "stage_entered":
      return t("describe.stage_entered", { stage: d.title || d.stage }) + reason(d);
    case "notice_planned":
      return t("describe.notice_planned", { id: d.notice_id, template: label("template", d.template), households: d.households ?? 0 });
    case "notice_approved":
      return t("describe.notice_approved", { id: d.notice_id, deliveries: d.deliveries ?? 0 });
    case "notice_sent":
      return t("describe.notice_sent", { id: d.notice_id });
    case "area_described":
      return t("describe.area_described", { texts: Object.entries(d.description || {}).map(([lang, text]) => `${languageName(lang)}: ${text}`).join("; ") });
    case "made_public":
      return (d.notice_id ? t("describe.made_public_notice", { id: d.notice_id }) : t("describe.made_public")) + reason(d);
    case "made_internal":
      return t("describe.made_internal") + reason(d);
    case "notice_held":
      return t("describe.notice_held", { id: d.notice_id, facts: list((d.missing_facts || []).map((f) => label("fact", f))) });
    case "notice_approval_recorded":
      return t("describe.notice_approval_recorded", { id: d.notice_id, by: d.by, count: number(d.approvals), required: number(d.approvals_required) });
    case "sla_started":
    case "sla_met":
    case "sla_breached":
      return t("describe.sla", { sla: d.title || words(d.sla) }) + (d.due_at ? ` · ${t("sla.due", { time: dateTime(d.due_at) })}` : "");
    case "etr_set":
      return t("describe.etr_set", { etr: dateTime(d.etr) }) + reason(d);
    case "advisory_set":
      return t("describe.advisory_set", { advisory: label("advisory", d.advisory) }) + reason(d);
    case "page_sent":
      return t("describe.page_sent", { rota: words(d.rota), text: d.text || "" });
    case "household_reply":
      return t("describe.household_reply", { channel: label("channel", d.channel), account: d.account_id, text: d.text || "" });
    case "etr_requested":
    case "advisory_lifted":
    case "confirmed":
      return d.reason || label("event", e.type);
    default: {
      const text = Object.entries(d).filter(([k]) => k !== "action").map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
      return text || String(e.type).replaceAll("_", " ");
    }
  }
}

/** A configuration id shown to people (a rota, an SLA without a title): words, not a code. */
function words(id) {
  return String(id ?? "").replaceAll("_", " ");
}

function reason(d) {
  return d.reason ? ` (${d.reason})` : "";
}
