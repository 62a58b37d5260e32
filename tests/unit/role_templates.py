"""Render a role's files with ansible-core's own Templar, as the template module does."""
from pathlib import Path

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLES = Path(__file__).resolve().parents[2] / "roles"


def trust(value):
    """Vars files read by a play are templates; DataLoader alone leaves them plain strings."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trust(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trust(item) for item in value]
    return value


def role_variables(loader, *roles):
    """The defaults and vars of ``roles``, later ones winning, as a play that runs them has them."""
    variables = {}
    for role in roles:
        for part in ("defaults", "vars"):
            path = ROLES / role / part / "main.yml"
            if path.exists():
                variables.update(trust(loader.load_from_file(str(path)) or {}))
    return variables


def render_file(path, loader, variables):
    return Templar(loader=loader, variables=variables).template(trust_as_template(Path(path).read_text()))


__all__ = ["DataLoader", "Templar", "trust", "trust_as_template", "role_variables", "render_file", "ROLES"]
