"""Liquid templates: checked when saved, rendered per channel with the brand kit applied.

Sandboxing: python-liquid never reaches Python attributes or callables, only the mappings and
lists we hand it (plain JSON data), and :class:`Sandbox` caps loops, output size, nesting and
local variables, so a template cannot run away with a worker. Unknown filters, bad syntax and
missing partials are errors at save time, reported with the field, line and column.

HTML (email bodies and the layout) renders with autoescape on: a trait containing ``<script>``
arrives as text. Text channels (subject, SMS, push, in-app, webhooks) render without escaping.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, DictLoader, Environment
from liquid.exceptions import LiquidError, TemplateNotFoundError
from markupsafe import Markup

from omnicx.messaging.providers.base import (
    Content,
    EmailContent,
    InAppContent,
    PushContent,
    SmsContent,
    WebhookContent,
)
from omnicx.messaging.schemas import BrandKit, Variants
from omnicx.messaging.signing import Links

DEFAULT_LAYOUT = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="margin:0;padding:0;background:{{ brand.colors.background }};\
color:{{ brand.colors.text }};font-family:Helvetica,Arial,sans-serif">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="600" cellpadding="0" cellspacing="0">
<tr><td style="background:{{ brand.colors.primary }};padding:16px 24px">
{%- if brand.logo_url -%}<img src="{{ brand.logo_url }}" alt="{{ brand.name }}" height="40">
{%- else -%}<span style="color:#ffffff;font-size:20px">{{ brand.name }}</span>{%- endif -%}
</td></tr>
<tr><td style="background:#ffffff;padding:24px">{{ content }}
{%- if brand.sign_off != blank %}<p>{{ brand.sign_off | newline_to_br }}</p>{% endif %}</td></tr>
<tr><td style="padding:16px 24px;font-size:12px;color:#6b7280">{{ brand.footer }}
{%- if brand.legal_address != blank %}<br>{{ brand.legal_address }}{% endif %}
{%- if unsubscribe_url %}<br><a href="{{ unsubscribe_url }}" \
style="color:{{ brand.colors.accent }}">Unsubscribe</a>{% endif %}</td></tr>
</table></td></tr></table></body></html>"""

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr|table)>|<br\s*/?>", re.IGNORECASE)


class Sandbox(Environment):
    loop_iteration_limit = 10_000
    output_stream_limit = 2_000_000
    context_depth_limit = 30
    local_namespace_limit = 100_000


@dataclass(frozen=True)
class TemplateProblem:
    field: str
    line: int | None
    column: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "line": self.line, "column": self.column, "msg": self.message}


class TemplateInvalid(Exception):
    def __init__(self, problems: list[TemplateProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class RenderError(Exception):
    """A template that parsed failed while rendering (a limit, a bad filter argument)."""


def _position(source: str, index: int) -> tuple[int, int]:
    before = source[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


class Liquid:
    """The two environments (text, HTML) of one brand kit, with its partials."""

    def __init__(self, partials: Mapping[str, str]) -> None:
        loader = DictLoader(dict(partials))
        self.text = Sandbox(loader=loader)
        self.html = Sandbox(loader=loader, autoescape=True)
        self._cache: dict[tuple[bool, str], BoundTemplate] = {}

    def compile(self, source: str, *, html: bool = False) -> BoundTemplate:
        key = (html, source)
        template = self._cache.get(key)
        if template is None:
            template = (self.html if html else self.text).from_string(source)
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[key] = template
        return template

    def check(self, field: str, source: str, *, html: bool = False) -> list[TemplateProblem]:
        """Problems a source has, with line and column (1-based)."""
        try:
            template = self.compile(source, html=html)
        except LiquidError as exc:
            return [_problem(field, exc, source)]
        problems = []
        env = self.html if html else self.text
        for name, spans in template.analyze(include_partials=False).filters.items():
            if name not in env.filters:
                line, column = _position(source, spans[0].index)
                problems.append(TemplateProblem(field, line, column, f"unknown filter {name!r}"))
        try:
            template.analyze(include_partials=True)
        except LiquidError as exc:  # a missing or broken partial
            problems.append(_problem(field, exc, source))
        return problems

    def render(self, source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
        try:
            return self.compile(source, html=html).render(**context)
        except LiquidError as exc:
            raise RenderError(str(exc.message)) from exc


def _problem(field: str, exc: LiquidError, source: str) -> TemplateProblem:
    context = exc.context()
    if context:
        line, column = context[0], context[1] + 1
    else:  # found only at the end of the source (an unclosed block)
        line, column = source.count("\n") + 1, len(source) - source.rfind("\n")
    message = str(exc.message)
    if isinstance(exc, TemplateNotFoundError):
        message = f"no partial {message!r}"
    return TemplateProblem(field, line, column, message)


@lru_cache(maxsize=16)
def _liquid_for(partials: tuple[tuple[str, str], ...]) -> Liquid:
    return Liquid(dict(partials))


def liquid_for(brand: BrandKit) -> Liquid:
    return _liquid_for(tuple(sorted(brand.partials.items())))


def check_brand(brand: BrandKit) -> None:
    liquid = liquid_for(brand)
    problems = [
        p for name, src in brand.partials.items() for p in liquid.check(f"partials.{name}", src)
    ]
    if brand.email_layout is not None:
        problems += liquid.check("email_layout", brand.email_layout, html=True)
        if "content" not in brand.email_layout:
            problems.append(TemplateProblem("email_layout", None, None, "no {{ content }}"))
    if problems:
        raise TemplateInvalid(problems)


def check_variants(variants: Variants, brand: BrandKit) -> None:
    """Raise :class:`TemplateInvalid` listing every problem of every variant."""
    liquid = liquid_for(brand)
    problems: list[TemplateProblem] = []
    for channel, fields in variants.model_dump(exclude_none=True).items():
        for name, source in _sources(fields):
            html = channel == "email" and name == "html"
            problems += liquid.check(f"variants.{channel}.{name}", source, html=html)
    if problems:
        raise TemplateInvalid(problems)


def _sources(fields: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every string in a variant (webhook payloads nest), with its dotted path."""
    if isinstance(fields, str):
        return [(prefix, fields)]
    if isinstance(fields, dict):
        return [
            item
            for key, value in fields.items()
            for item in _sources(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(fields, list):
        return [item for i, v in enumerate(fields) for item in _sources(v, f"{prefix}[{i}]")]
    return []


def variables_used(variants: dict[str, Any], channel: str) -> set[str]:
    """Top-level names a variant reads (so costly context, e.g. the cart, loads on demand)."""
    liquid = Liquid({})
    names: set[str] = set()
    for _field, source in _sources(variants.get(channel) or {}):
        try:
            names.update(liquid.compile(source).analyze().globals)
        except LiquidError:
            continue
    return names


def variant_for(variants: dict[str, Any], channel: str) -> dict[str, Any] | None:
    found = variants.get(channel)
    if found is None and channel == "webpush":
        found = variants.get("push")
    return found


def html_to_text(html: str) -> str:
    text = _BLOCK_END.sub("\n", html)
    text = htmllib.unescape(_TAGS.sub("", text))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


@dataclass(frozen=True)
class Tracking:
    """Per-message links; ``None`` parts are left out (previews, transactional mail)."""

    links: Links
    message_id: int
    unsubscribe: bool
    opens: bool = True
    clicks: bool = True


def render_email(
    liquid: Liquid,
    variant: dict[str, Any],
    context: dict[str, Any],
    brand: BrandKit,
    *,
    from_email: str,
    tracking: Tracking | None,
) -> EmailContent:
    unsubscribe_url = (
        tracking.links.unsubscribe_url(tracking.message_id)
        if tracking is not None and tracking.unsubscribe
        else None
    )
    context = {**context, "unsubscribe_url": unsubscribe_url}
    subject = liquid.render(variant["subject"], context).strip()
    body = liquid.render(variant["html"], context, html=True)
    layout = brand.email_layout or DEFAULT_LAYOUT
    html = liquid.render(
        layout, {**context, "content": Markup(body), "subject": subject}, html=True
    )
    if variant.get("text"):
        text = liquid.render(variant["text"], context)
    else:
        text = html_to_text(body)
    text = "\n\n".join(
        part for part in (text.strip(), brand.sign_off, brand.footer, brand.legal_address) if part
    )
    headers: dict[str, str] = {}
    if tracking is not None:
        if unsubscribe_url:
            text += f"\n\nUnsubscribe: {unsubscribe_url}"
            headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        html = _track(html, tracking)
    return EmailContent(
        subject=subject,
        html=html,
        text=text + "\n",
        from_email=from_email,
        from_name=brand.from_name or brand.name,
        reply_to=brand.reply_to,
        headers=headers,
    )


def _track(html: str, tracking: Tracking) -> str:
    links, mid = tracking.links, tracking.message_id
    if tracking.clicks:

        def rewrite(match: re.Match[str]) -> str:
            url = htmllib.unescape(match.group(3))
            if links.is_ours(url):
                return match.group(0)
            tracked = htmllib.escape(links.click_url(mid, url), quote=True)
            return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"

        html = _HREF.sub(rewrite, html)
    if tracking.opens:
        pixel = f'<img src="{links.open_url(mid)}" width="1" height="1" alt="" style="border:0">'
        at = html.lower().rfind("</body>")
        html = html[:at] + pixel + html[at:] if at >= 0 else html + pixel
    return html


def render_content(
    channel: str,
    variants: dict[str, Any],
    context: dict[str, Any],
    brand: BrandKit,
    *,
    from_email: str,
    tracking: Tracking | None = None,
) -> Content:
    """The channel's content, rendered; raises ``RenderError`` or ``LookupError`` (no variant)."""
    variant = variant_for(variants, channel)
    if variant is None:
        raise LookupError(f"the template has no {channel} variant")
    liquid = liquid_for(brand)
    if channel == "email":
        return render_email(
            liquid, variant, context, brand, from_email=from_email, tracking=tracking
        )

    def r(key: str) -> str | None:
        return _opt(liquid, variant.get(key), context)

    if channel == "sms":
        return SmsContent(text=liquid.render(variant["text"], context).strip())
    if channel in ("push", "webpush"):
        return PushContent(
            title=r("title") or "",
            body=r("body") or "",
            deep_link=r("deep_link"),
            image_url=r("image_url"),
        )
    if channel == "inapp":
        return InAppContent(
            title=r("title") or "", body=r("body") or "", image_url=r("image_url"), link=r("link")
        )
    if channel == "webhook":
        return WebhookContent(payload=_render_json(liquid, variant.get("payload") or {}, context))
    raise LookupError(f"unknown channel {channel!r}")


def webhook_target(
    variants: dict[str, Any], context: dict[str, Any], brand: BrandKit
) -> str | None:
    """The URL a webhook variant names (rendered), if it names one."""
    variant = variants.get("webhook") or {}
    return _opt(liquid_for(brand), variant.get("url"), context)


def _opt(liquid: Liquid, source: str | None, context: dict[str, Any]) -> str | None:
    if source is None:
        return None
    return liquid.render(source, context).strip() or None


def _render_json(liquid: Liquid, value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return liquid.render(value, context)
    if isinstance(value, dict):
        return {k: _render_json(liquid, v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(liquid, v, context) for v in value]
    return value
