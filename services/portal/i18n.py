"""The portal's words in Chinese and English. A page's language comes from its link (the holder's language);
`?lang=` switches it."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "brand": "号码安全服务",
        "switch": "English",
        "error_title": "出错了",
        "error_body": "页面暂时无法显示。请稍后再试。",
        "what_to_do": "您可以：",
        "do_app": "打开运营商App，在“号码安全”中查看并办理；",
        "do_hall": "携带本人有效身份证件到任一营业厅办理；",
        "do_hotline": "拨打客服热线 {hotline}（可用其他号码拨打）。",
        "link_bad_title": "链接无效",
        "link_bad_body": "这个链接不完整或已被改动。请使用短信中的原始链接。",
        "link_expired_title": "链接已过期",
        "link_expired_body": "这个链接已过期。最新的提醒短信中有新的链接。",
        "not_found_title": "页面不存在",
        "not_found_body": "没有找到这个页面。",
        "forbidden_title": "请求未被接受",
        "forbidden_body": "表单已过期或不是从本页面提交的。请返回页面重新提交。",
        "too_large_title": "文件太大",
        "too_large_body": "上传的文件超过了大小限制。",
        "unavailable_title": "服务暂时不可用",
        "unavailable_body": "系统繁忙，请稍后刷新重试。您的号码状态不会因此改变。",
    },
    "en": {
        "brand": "Number safety service",
        "switch": "中文",
        "error_title": "Something went wrong",
        "error_body": "This page cannot be shown right now. Please try again later.",
        "what_to_do": "What you can do:",
        "do_app": "open the carrier's app and go to “Number safety”;",
        "do_hall": "visit any business hall with your own valid ID card;",
        "do_hotline": "call the hotline {hotline} (from any phone).",
        "link_bad_title": "This link does not work",
        "link_bad_body": "The link is incomplete or was changed. Please use the link exactly as it came in the SMS.",
        "link_expired_title": "This link has expired",
        "link_expired_body": "This link has expired. The latest reminder SMS carries a new one.",
        "not_found_title": "Page not found",
        "not_found_body": "There is no such page.",
        "forbidden_title": "Request not accepted",
        "forbidden_body": "The form expired or was not sent from this page. Please go back and send it again.",
        "too_large_title": "File too large",
        "too_large_body": "An uploaded file is larger than allowed.",
        "unavailable_title": "Service busy",
        "unavailable_body": "The system is busy; please refresh in a moment. Nothing about your number changes.",
    },
}


def language(value: str | None, default: str = "zh") -> str:
    return value if value in LANGS else default
