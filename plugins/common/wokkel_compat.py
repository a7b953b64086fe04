"""The one door to wokkel (18.0.0, its only release) for plugins.

wokkel's larger pieces save plugins work (XEP-0004 data forms now; MUC and
pubsub helpers later), but on current Twisted they fail to import:
``data_form`` (and ``disco``, ``ping``, ``pubsub`` through it) wants
``twisted.python.compat._PY3``, removed in Twisted 21.2; ``muc`` wants
``twisted.python.constants``, moved to the ``constantly`` package in 24.11.
This module supplies exactly those two names, imports the wokkel modules with
Twisted's deprecation warnings for its remaining aliases silenced, and
re-exports them. The core never imports wokkel. ``tests/plugins/test_wokkel_compat.py``
fails the day any of this stops working; we never pin an old Twisted for it.

COMPAT: delete this shim when wokkel publishes a release with its py3 clean-up.
"""

from __future__ import annotations

import sys
import warnings

import constantly
import twisted.python.compat as twisted_compat

if not hasattr(twisted_compat, "_PY3"):
    twisted_compat._PY3 = True  # wokkel.data_form picks its Python 3 branch with it
sys.modules.setdefault("twisted.python.constants", constantly)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # compat.unicode, iteritems...
    from wokkel import data_form

# Rebind the deprecated aliases wokkel calls at run time to their builtins.
data_form.iteritems = lambda mapping: iter(mapping.items())
data_form.unicode = str

__all__ = ["data_form"]
