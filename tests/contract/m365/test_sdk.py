"""The official Microsoft Graph Python SDK (msgraph-sdk), pointed at the emulator, does the sync basics."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.calendar import Calendar
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.users.item.calendars.item.calendar_view.delta.delta_request_builder import (
    DeltaRequestBuilder,
)
from msgraph_core import GraphClientFactory

from .conftest import token_for

MEGAN = "megan@contoso.test"
# The SDK warns about its own generated request-configuration classes.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class StaticToken(AccessTokenProvider):
    def __init__(self, token: str, host: str):
        self.token = token
        self.validator = AllowedHostsValidator([host])

    async def get_authorization_token(self, uri, additional_authentication_context=None) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self.validator


def _client(m365, token: str) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    host = urlsplit(m365.base_url).hostname
    transport_client = httpx.AsyncClient(verify=str(m365.ca_cert_path), trust_env=False)
    http_client = GraphClientFactory.create_with_default_middleware(client=transport_client)
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken(token, host)), client=http_client)
    adapter.base_url = m365.graph_url
    return GraphServiceClient(request_adapter=adapter), http_client


def test_sdk_calendar_events_delta_contacts_and_users(http, m365):
    token = token_for(http, m365)

    async def scenario():
        client, http_client = _client(m365, token)
        user = client.users.by_user_id(MEGAN)
        calendar = await user.calendars.post(Calendar(name="Zoho CRM"))
        events = user.calendars.by_calendar_id(calendar.id).events
        created = await events.post(Event(subject="Made by the SDK",
                                          start=DateTimeTimeZone(date_time="2030-05-01T09:00:00", time_zone="UTC"),
                                          end=DateTimeTimeZone(date_time="2030-05-01T10:00:00", time_zone="UTC")))
        delta_builder = user.calendars.by_calendar_id(calendar.id).calendar_view.delta
        config = delta_builder.DeltaRequestBuilderGetRequestConfiguration(
            query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time="2030-01-01T00:00:00Z", end_date_time="2030-12-31T00:00:00Z"))
        first = await delta_builder.get(request_configuration=config)
        assert [e.id for e in first.value] == [created.id] and first.odata_delta_link
        updated = await events.by_event_id(created.id).patch(Event(subject="Changed by the SDK"))
        assert updated.subject == "Changed by the SDK" and updated.change_key != created.change_key
        second = await delta_builder.with_url(first.odata_delta_link).get()
        assert [e.subject for e in second.value] == ["Changed by the SDK"]
        await events.by_event_id(created.id).delete()
        third = await delta_builder.with_url(second.odata_delta_link).get()
        assert [e.id for e in third.value] == [created.id] and third.value[0].additional_data.get("@removed") == {"reason": "deleted"}

        folder = await user.contact_folders.post(ContactFolder(display_name="Zoho CRM Contacts"))
        contacts = user.contact_folders.by_contact_folder_id(folder.id).contacts
        contact = await contacts.post(Contact(given_name="Pavel", surname="Bansky",
                                              email_addresses=[EmailAddress(address="pavel@example.com", name="Pavel")]))
        patched = await contacts.by_contact_id(contact.id).patch(Contact(job_title="Buyer"))
        assert patched.job_title == "Buyer" and patched.display_name == "Pavel Bansky"
        listed = await contacts.get()
        assert [c.id for c in listed.value] == [contact.id]
        await contacts.by_contact_id(contact.id).delete()
        await user.contact_folders.by_contact_folder_id(folder.id).delete()
        await user.calendars.by_calendar_id(calendar.id).delete()

        users = await client.users.get()
        assert len(users.value) == 30
        await http_client.aclose()

    # Playwright's sync API may own this thread's event loop (session browser fixture): use a fresh thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, scenario()).result()
