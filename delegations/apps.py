from django.apps import AppConfig


class DelegationsConfig(AppConfig):
    name = "delegations"
    verbose_name = "Delegations"

    def ready(self):
        from governance import events

        from . import services

        events.subscribe("agent.decommissioned", services.on_agent_decommissioned)
        events.subscribe("person.deactivated", services.on_person_deactivated)
