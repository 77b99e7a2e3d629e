"""Every package's tables, imported once so ``Base.metadata`` is complete for Alembic."""

from omnicx import timers
from omnicx.analytics import models as analytics_models
from omnicx.auth import models as auth_models
from omnicx.commerce import models as commerce_models
from omnicx.conversations import models as conversation_models
from omnicx.db import Base
from omnicx.journeys import models as journey_models
from omnicx.messaging import models as messaging_models
from omnicx.ops import models as ops_models
from omnicx.profiles import models as profile_models
from omnicx.segments import models as segment_models

__all__ = [
    "Base",
    "analytics_models",
    "auth_models",
    "commerce_models",
    "conversation_models",
    "journey_models",
    "messaging_models",
    "ops_models",
    "profile_models",
    "segment_models",
    "timers",
]
