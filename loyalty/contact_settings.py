"""The program's contact rules row (`ContactRules`): where the admin and whoever applies the
rules read it."""

from loyalty.models import ContactRules


def contact_rules_settings() -> ContactRules:
    """The one contact rules row (created with its defaults if a flush removed it)."""
    rules, _ = ContactRules.objects.get_or_create(pk=1)
    return rules
