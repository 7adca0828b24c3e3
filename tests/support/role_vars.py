"""A role's YAML as Ansible loads it, for tests that render the role's variables with the Templar."""

from ansible.template import trust_as_template


def trusted(value):
    """Mark a role's strings as templates, as Ansible does for a role's own files (data from elsewhere
    is not templated in ansible-core 2.19); lists and mappings are walked."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value
