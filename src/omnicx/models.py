"""Every package's tables, imported once so ``Base.metadata`` is complete for Alembic."""

from omnicx.auth import models as auth_models
from omnicx.db import Base
from omnicx.profiles import models as profile_models

__all__ = ["Base", "auth_models", "profile_models"]
