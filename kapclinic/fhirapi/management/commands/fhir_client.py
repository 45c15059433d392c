"""`manage.py fhir_client create --clinic <slug> --name <name> --scopes "system/*.rs" --jwks <file or url>`
registers a backend service for one clinic and prints its client id; `list` and `revoke` too."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kapclinic.accounts.models import Clinic
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.fhirapi import clients
from kapclinic.fhirapi.models import ClientKind, FhirClient


class Command(BaseCommand):
    help = "Register, list or revoke FHIR API clients of a clinic (docs/fhir-api.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["create", "list", "revoke"])
        parser.add_argument("--clinic", required=True, help="The clinic's slug.")
        parser.add_argument("--name", default="")
        parser.add_argument("--scopes", default="system/*.rs")
        parser.add_argument("--jwks", default="", help="A JWKS file or https URL (backend services).")
        parser.add_argument("--kind", default=ClientKind.BACKEND, choices=list(ClientKind.values))
        parser.add_argument("--redirect-uri", default="", help="Apps: the redirect URIs, space-separated.")
        parser.add_argument("--client-id", default="", help="revoke: the client id.")

    def handle(self, *args: Any, **options: Any) -> None:
        clinic = Clinic.objects.filter(slug=options["clinic"]).first()
        if clinic is None:
            raise CommandError(f"No clinic with the slug {options['clinic']!r}.")
        actor = Actor.system(clinic, reason="fhir_client command")
        if options["action"] == "list":
            for client in clients.clinic_clients(clinic):
                state = "revoked" if client.revoked_at else "active"
                self.stdout.write(
                    f"{client.client_id}\t{client.kind}\t{state}\t{client.name}\t{client.scopes}"
                )
            return
        if options["action"] == "revoke":
            found = FhirClient.objects.filter(
                clinic=clinic, application__client_id=options["client_id"]
            ).first()
            if found is None:
                raise CommandError("No client with this id in this clinic.")
            clients.revoke(actor, found)
            self.stdout.write(f"Revoked {found.client_id}")
            return
        if not options["name"]:
            raise CommandError("--name is required.")
        try:
            jwks, jwks_url = clients.load_jwks(options["jwks"]) if options["jwks"] else (None, "")
            client = clients.register(
                actor,
                clinic,
                name=options["name"],
                scopes=options["scopes"],
                kind=options["kind"],
                jwks=jwks,
                jwks_url=jwks_url,
                redirect_uris=options["redirect_uri"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(client.client_id)
