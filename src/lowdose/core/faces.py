""":func:`lowdose.core.lazy_exports.lazy_exports` under its former name, for ``lowdose.training``.

This re-export goes when ``lowdose/training/__init__.py`` imports ``lazy_exports`` from
:mod:`lowdose.core.lazy_exports`.
"""

from lowdose.core.lazy_exports import lazy_exports as lazy_face

__all__ = ["lazy_face"]
