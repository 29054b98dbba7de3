from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        from . import attestations, events

        events.subscribe("person.deactivated", attestations.on_person_deactivated)
        events.subscribe("agent.decommissioned", attestations.on_agent_decommissioned)
