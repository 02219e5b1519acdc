"""The one reader of the environment: settings, engines and the gunicorn config all go through it.

Django-free on purpose (the workers' engines and gunicorn's config file use it, and workers/ never
imports Django). Every variable is declared once, with what it does, in
`carepill_config.variables`; reading a name that is not declared there is a programming error and
fails at once, so `.env.example` (which tests/test_config.py compares with the declarations) can
never fall behind the code.

A bad value fails loudly, naming the variable and the value: a typo must stop the process at start,
not surface hours later as "false" or as a confusing runtime error. Secrets may come from a file
(`NAME_FILE`, e.g. a compose or Kubernetes secret mounted under /run/secrets).
"""

from __future__ import annotations

from carepill_config.reader import ConfigError, Env
from carepill_config.variables import VARIABLES, Variable, variable_names

__all__ = ["VARIABLES", "ConfigError", "Env", "Variable", "variable_names"]
