"""env probes: the target's environment variables (never their values) and its git repository.

Modules: `values` (where a variable's value comes from; the vendor rule for "not configured"),
`urls` (URL parsing), `variables` (env.vars, env.url, env.tls_urls, env.log_level), `keys`
(env.service_key), `secret_patterns` and `git` (env.dotenv_ignored, env.no_secrets_in_git).
"""

from msgops.probes.env import git, keys, variables

__all__ = ["git", "keys", "variables"]
