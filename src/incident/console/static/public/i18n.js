// Every string of the residents' page, in English and Simplified Chinese.

export const LANGUAGES = ["en", "zh-CN"];

const STRINGS = {
  en: {
    "page.title": "Service updates",
    skip: "Skip to \u201cIs my address affected?\u201d",
    title: "Service updates",
    language: "Language",
    intro: "Water, gas and heat outages in our service area, updated as crews work.",
    "check.title": "Is my address affected?",
    "check.hint": "Tap your location on the map, or type its coordinates.",
    "check.lat": "Latitude",
    "check.lon": "Longitude",
    "check.button": "Check",
    "check.locate": "Use my location",
    "check.checking": "Checking\u2026",
    "check.bad": "Type a latitude between -90 and 90 and a longitude between -180 and 180, e.g. 38.035 and -85.545.",
    "check.failed": "The check did not work: {message}",
    "check.no_location": "Your device did not give a location. Tap the map or type coordinates instead.",
    "answer.affected": "Yes: this point is in an affected area.",
    "answer.near": "Near: this point is within {distance} m of an affected area.",
    "answer.not_affected": "No: this point is not in any current incident\u2019s area.",
    "answer.at": "Checked point: {lat}, {lon}",
    "answer.incident.affected": "Inside the area of: {what}",
    "answer.incident.near": "{distance} m from the area of: {what}",
    "map.title": "Map of the incident areas",
    "map.legend.area": "Affected area",
    "map.legend.point": "Your point",
    "map.area": "Area of {what}",
    "list.title": "Current incidents",
    "list.loading": "Loading\u2026",
    "list.none": "There are no incidents in our service area right now.",
    "list.failed": "The list could not be loaded. It will be tried again shortly.",
    "list.count": "{count} current incidents",
    "list.count.one": "1 current incident",
    "field.status": "Status",
    "field.where": "Where",
    "field.etr": "Expected back",
    "field.window": "Planned work",
    "field.households": "Households affected",
    "field.updated": "Last update",
    "field.advice": "What to do",
    "etr.unknown": "not known yet",
    "show": "Show on map",
    "signup.title": "Get alerts",
    "signup.text": "Sign up to get a text message, call or email when an incident affects your address.",
    "signup.link": "Sign up for alerts",
    footer: "This page shows no personal data. Your point is checked against the incident areas only and is not stored.",
    "kind.main_break": "Water main break",
    "kind.unplanned_outage": "Unplanned outage",
    "kind.planned_outage": "Planned outage",
    "kind.low_pressure": "Low water pressure",
    "kind.contamination": "Water quality problem",
    "kind.gas_leak": "Gas leak",
    "kind.heat_outage": "Heating outage",
    "utility.water": "Water",
    "utility.gas": "Gas",
    "utility.heat": "District heating",
    "status.declared": "Reported",
    "status.active": "Crews working",
    "status.restoring": "Restoring service",
    "status.monitoring": "Monitoring",
    "status.closed": "Resolved",
    "status.cancelled": "Cancelled",
  },
  "zh-CN": {
    "page.title": "服务动态",
    skip: "跳到\u201c我的地址受影响吗？\u201d",
    title: "服务动态",
    language: "语言",
    intro: "本服务区内的停水、停气和停暖信息，随抢修进展更新。",
    "check.title": "我的地址受影响吗？",
    "check.hint": "在地图上点选您的位置，或输入坐标。",
    "check.lat": "纬度",
    "check.lon": "经度",
    "check.button": "查询",
    "check.locate": "使用我的位置",
    "check.checking": "正在查询\u2026",
    "check.bad": "请输入 -90 至 90 之间的纬度和 -180 至 180 之间的经度，例如 38.035 和 -85.545。",
    "check.failed": "查询失败：{message}",
    "check.no_location": "设备未提供位置。请在地图上点选或输入坐标。",
    "answer.affected": "是：该位置在受影响区域内。",
    "answer.near": "附近：该位置距受影响区域 {distance} 米以内。",
    "answer.not_affected": "否：该位置不在任何当前事件的区域内。",
    "answer.at": "查询位置：{lat}，{lon}",
    "answer.incident.affected": "位于以下事件区域内：{what}",
    "answer.incident.near": "距以下事件区域 {distance} 米：{what}",
    "map.title": "事件区域地图",
    "map.legend.area": "受影响区域",
    "map.legend.point": "您的位置",
    "map.area": "{what}的区域",
    "list.title": "当前事件",
    "list.loading": "正在加载\u2026",
    "list.none": "本服务区目前没有事件。",
    "list.failed": "列表未能加载，稍后将自动重试。",
    "list.count": "当前共 {count} 个事件",
    "list.count.one": "当前共 1 个事件",
    "field.status": "状态",
    "field.where": "地点",
    "field.etr": "预计恢复",
    "field.window": "计划施工",
    "field.households": "受影响住户",
    "field.updated": "最近更新",
    "field.advice": "注意事项",
    "etr.unknown": "暂未确定",
    "show": "在地图上显示",
    "signup.title": "接收通知",
    "signup.text": "登记后，当事件影响您的地址时，我们会通过短信、电话或电子邮件通知您。",
    "signup.link": "登记接收通知",
    footer: "本页面不显示任何个人信息。您的位置仅与事件区域比对，不会被保存。",
    "kind.main_break": "供水主管破裂",
    "kind.unplanned_outage": "计划外停供",
    "kind.planned_outage": "计划停供",
    "kind.low_pressure": "水压偏低",
    "kind.contamination": "水质问题",
    "kind.gas_leak": "燃气泄漏",
    "kind.heat_outage": "停暖",
    "utility.water": "供水",
    "utility.gas": "燃气",
    "utility.heat": "集中供暖",
    "status.declared": "已报告",
    "status.active": "正在抢修",
    "status.restoring": "正在恢复供应",
    "status.monitoring": "观察中",
    "status.closed": "已解决",
    "status.cancelled": "已取消",
  },
};

let current = "en";

/** The page's language from a stored choice, then the browser's languages; else English. */
export function pickLanguage(stored, browser) {
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of browser || []) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function setLanguage(language) {
  current = LANGUAGES.includes(language) ? language : "en";
}

export function language() {
  return current;
}

/** The string `key` in the page's language, `{name}` filled from `values`. */
export function t(key, values = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** A time in the page's language, in the reader's own time zone. */
export function dateTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  return new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "short" }).format(when);
}

export function number(value) {
  return new Intl.NumberFormat(current).format(value);
}

export const KEYS = Object.keys(STRINGS.en);
export const KEYS_ZH = Object.keys(STRINGS["zh-CN"]);
