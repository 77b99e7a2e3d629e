"""Journeys from YAML (or JSON) files, with the message templates they need.

A file holds ``id``, ``name``, ``description``, ``definition`` and optionally ``templates``:
``{name: {category, topic, variants}}`` in the messaging API's template shape. Loading creates
each template that does not exist yet (an existing one, perhaps edited by a marketer, is left
alone), then creates or updates the journey's draft and, when asked, publishes it (a draft equal
to the live version is not published again, so loading twice changes nothing).

Messaging offers no service call to create a template (its API route does it), so templates are
validated with messaging's own schema and Liquid check and inserted as its CLI does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.errors import ApiError
from omnicx.journeys import service
from omnicx.journeys.models import JourneyVersion
from omnicx.journeys.schemas import JourneyCreate, JourneyWrite
from omnicx.messaging import service as messaging
from omnicx.messaging.brand import load_brand
from omnicx.messaging.models import MessageTemplate
from omnicx.messaging.schemas import TemplateWrite
from omnicx.messaging.templates import TemplateInvalid, check_variants

KEYS = {"id", "name", "description", "definition", "templates"}


@dataclass(frozen=True)
class Document:
    source: str
    journey: JourneyCreate
    templates: dict[str, TemplateWrite]


@dataclass(frozen=True)
class Loaded:
    journey: str
    templates_created: list[str]
    published: int | None


def parse_document(source: str, data: Any) -> Document:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a journey file is an object with id, name and definition")
    extra = sorted(set(data) - KEYS)
    if extra:
        raise ValueError(f"{source}: unexpected keys {extra} (allowed: {sorted(KEYS)})")
    try:
        journey = JourneyCreate.model_validate({k: v for k, v in data.items() if k != "templates"})
        raw = data.get("templates") or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: templates is an object of name: template")
        templates = {str(n): TemplateWrite.model_validate(t) for n, t in raw.items()}
    except ValidationError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    try:
        service.check(journey.definition)
    except ApiError as exc:
        raise ValueError(f"{source}: {exc.message}") from exc
    return Document(source, journey, templates)


def read_file(path: Path) -> Document:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    return parse_document(str(path), data)


def shipped() -> list[Document]:
    """The example journeys that come with OmniCX."""
    folder = resources.files("omnicx.journeys") / "examples"
    return [
        parse_document(f.name, yaml.safe_load(f.read_text(encoding="utf-8")))
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith((".yaml", ".yml"))
    ]


async def ensure_templates(
    session: AsyncSession, templates: dict[str, TemplateWrite], now: datetime
) -> list[str]:
    created = []
    brand = await load_brand(session)
    for name, body in templates.items():
        if await messaging.get_template(session, name) is not None:
            continue
        try:
            check_variants(body.variants, brand)
        except TemplateInvalid as exc:
            raise ApiError(422, "template_invalid", f"template {name!r}: {exc}") from exc
        session.add(
            MessageTemplate(
                name=name,
                description=body.description,
                category=body.category,
                topic=body.topic or body.category,
                variants=body.variants.model_dump(exclude_none=True),
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        created.append(name)
    await session.flush()
    return created


async def load(
    session: AsyncSession,
    documents: Sequence[Document],
    *,
    publish: bool,
    by: str,
    now: datetime,
) -> list[Loaded]:
    out = []
    for doc in documents:
        created = await ensure_templates(session, doc.templates, now)
        data = doc.journey
        journey = await service.get(session, journey_id=data.id)
        if journey is None:
            journey = await service.create(session, data=data, now=now)
        else:
            write = JourneyWrite(
                name=data.name, description=data.description, definition=data.definition
            )
            journey = await service.update_draft(session, journey=journey, data=write, now=now)
        published = None
        if publish and await _differs_from_live(session, journey.id, journey.live_version, data):
            published, _ = await service.publish(
                session, journey=journey, migrate={}, by=by, now=now
            )
        out.append(Loaded(journey.id, created, published))
    return out


async def _differs_from_live(
    session: AsyncSession, journey_id: str, live: int | None, data: JourneyCreate
) -> bool:
    if live is None:
        return True
    current = (
        await session.execute(
            select(JourneyVersion.definition).where(
                JourneyVersion.journey_id == journey_id, JourneyVersion.version == live
            )
        )
    ).scalar_one_or_none()
    return current != data.definition
