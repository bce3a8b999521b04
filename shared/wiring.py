"""The composition root: builds clients and repositories from Settings, once per process
(warm Function instances reuse them). Only ``functions/`` and tests import this."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import timedelta
from functools import cached_property

import requests
from pydantic import SecretStr

from shared.accounts.install import InstallService
from shared.accounts.invitations import Invitation, InvitationService
from shared.accounts.join_requests import JoinRequest, JoinRequestService
from shared.accounts.models import AuditEvent, CrmAccountRef, MemberIdentity, TenantInstall
from shared.accounts.repository import AccountsRepository
from shared.config import Settings, SettingsError, get_settings
from shared.crm.directory import CrmDirectory
from shared.crm.members import MemberPermissions
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import ZohoOAuth
from shared.crm.records import CrmRecords
from shared.crm.session import CrmCallPolicy, CrmSessions
from shared.crm.token_store import AccessToken, SharedTokenStore, StoredAccessToken
from shared.crm.tokens import AccessTokens
from shared.crm.users import current_user_time_zone
from shared.crm.watch import CrmWatch
from shared.graph.client import GraphClient
from shared.graph.mailbox import GraphMailbox
from shared.graph.mailbox_lease import SharedMailboxes
from shared.graph.mailbox_shares import MailboxLimitsRow
from shared.graph.pacing import Pacing
from shared.graph.subscriptions import SubscriptionClient
from shared.identity.entra import EntraApp
from shared.identity.id_token import IdTokenVerifier
from shared.identity.sessions import SessionRow, SessionStore
from shared.identity.signed_links import LinkRow, SignedLinks
from shared.identity.token_cipher import TokenCipher
from shared.mail.outbox import OUTBOX_QUEUE, MailFailure, MailSender, Outbox, SealedOutboxMessage, SentMail
from shared.storage import JobQueue, StorageAccount, TableEntity, TableRepository
from shared.storage.shared_slots import SharedSlots, SlotRow
from shared.sync.adapters import kind_for
from shared.sync.conflicts import ConflictEntity, ConflictStore
from shared.sync.crm_routing import CRM_CHANGES_QUEUE, CrmChange
from shared.sync.dependencies import SyncDependencies
from shared.sync.held_notifications import GRAPH_NOTIFICATIONS_QUEUE, HeldNotifications
from shared.sync.holder_filters import HolderFilterRow
from shared.sync.jobs import SYNC_QUEUES, SyncJob, SyncJobQueues
from shared.sync.ledger_store import LedgerNote, SyncLedger
from shared.sync.link_store import LinkEntity, LinkStore
from shared.sync.org_activity import OrgSyncActivity, SyncReminder
from shared.sync.org_channels import OrgChannel, OrgMember
from shared.sync.profiles import ProfileStore, SyncKind, SyncProfile
from shared.sync.service import SyncService
from shared.sync.webhooks import WebhookRoute
from shared.transport.session import outbound_session


def _required(value: str | None, name: str) -> str:
    if not value:
        raise SettingsError(f"invalid configuration: {name}: is required for this feature")
    return value


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    @cached_property
    def http(self) -> requests.Session:
        return outbound_session(self.settings)

    @cached_property
    def storage(self) -> StorageAccount:
        return StorageAccount.from_settings(self.settings)

    @cached_property
    def _tables(self):  # type: ignore[no-untyped-def]
        return self.storage.table_service()

    def table(self, name: str, model: type[TableEntity]) -> TableRepository:  # type: ignore[type-arg]
        repository = TableRepository(self._tables, f"{self.settings.table_prefix}{name}", model)
        repository.ensure_table()
        return repository

    @cached_property
    def sessions(self) -> SessionStore:
        return SessionStore(
            self.table("sessions", SessionRow),
            _required(self.settings.session_secret, "SESSION_SECRET"),
            secure_cookies=self.settings.secure_cookies,
        )

    @cached_property
    def accounts(self) -> AccountsRepository:
        return AccountsRepository(
            self.table("installs", TenantInstall),
            self.table("members", MemberIdentity),
            self.table("crmlinks", CrmAccountRef),
            self.table("audit", AuditEvent),
        )

    @cached_property
    def links(self) -> SignedLinks:
        return SignedLinks(self.table("links", LinkRow))

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(JobQueue(self.storage.queue_service(), OUTBOX_QUEUE, SealedOutboxMessage), self.cipher)

    @cached_property
    def mail_sender(self) -> MailSender:
        return MailSender(self.graph, self.table("sentmail", SentMail), self.table("mailfailures", MailFailure))

    @cached_property
    def invitations(self) -> InvitationService:
        s = self.settings
        return InvitationService(
            self.table("invitations", Invitation), self.links, self.accounts, self.crm_directory, self.outbox,
            self.cipher, public_base_url=s.public_base_url, lifetime=timedelta(days=s.link_lifetime_days),
            default_profile=s.crm_default_profile, adopt_token=self.adopt_crm_token,
        )

    @cached_property
    def install(self) -> InstallService:
        """Install, Continue and Associate My Account (R1): who enters, and as which CRM member."""
        return InstallService(self.accounts, self.crm_directory, self.cipher, self.invitations,
                              adopt_token=self.adopt_crm_token)

    @cached_property
    def join_requests(self) -> JoinRequestService:
        s = self.settings
        return JoinRequestService(
            self.table("joinrequests", JoinRequest), self.links, self.accounts, self.crm_directory, self.outbox,
            public_base_url=s.public_base_url, lifetime=timedelta(days=s.link_lifetime_days),
            default_profile=s.crm_default_profile,
        )

    @cached_property
    def org_sync_activity(self) -> OrgSyncActivity:
        return OrgSyncActivity(self.accounts, self.sync_profiles, self.table("syncreminders", SyncReminder), self.outbox,
                               public_base_url=self.settings.public_base_url, progress=self.sync_links.progress)

    @cached_property
    def sync_profiles(self) -> ProfileStore:
        return ProfileStore(self.table("syncprofiles", SyncProfile))

    @cached_property
    def sync_links(self) -> LinkStore:
        return LinkStore(self.table("synclinks", LinkEntity))

    @cached_property
    def sync_conflicts(self) -> ConflictStore:
        return ConflictStore(self.table("syncconflicts", ConflictEntity))

    @cached_property
    def sync_ledger(self) -> SyncLedger:
        return SyncLedger(self.table("syncledger", LedgerNote))

    @cached_property
    def sync_queues(self) -> SyncJobQueues:
        return SyncJobQueues({name: JobQueue(self.storage.queue_service(), name, SyncJob) for name in SYNC_QUEUES})

    @cached_property
    def crm_changes_queue(self) -> JobQueue[CrmChange]:
        return JobQueue(self.storage.queue_service(), CRM_CHANGES_QUEUE, CrmChange)

    @cached_property
    def held_notifications_queue(self) -> JobQueue[HeldNotifications]:
        return JobQueue(self.storage.queue_service(), GRAPH_NOTIFICATIONS_QUEUE, HeldNotifications)

    @cached_property
    def sync(self) -> SyncService:
        caps = {SyncKind.CALENDAR: self.settings.calendar_initial_cap, SyncKind.CONTACTS: self.settings.contacts_initial_cap}
        return SyncService(SyncDependencies(
            profiles=self.sync_profiles, links=self.sync_links, conflicts=self.sync_conflicts, ledger=self.sync_ledger,
            jobs=self.sync_queues, routes=self.table("webhooks", WebhookRoute), accounts=self.accounts,
            org_channels=self.table("crmchannels", OrgChannel), org_members=self.table("crmchannels", OrgMember),
            crm_changes=self.crm_changes_queue,
            kind_for=lambda member, kind, **facts: kind_for(member, kind, self.mailbox(member), caps=caps, **facts),
            crm_session=lambda member: self.crm_sessions.for_member(self.crm_access(member)),
            crm_records=lambda member: CrmRecords(self.crm_sessions.for_member(self.crm_access(member))),
            crm_channels=lambda member: CrmWatch(self.crm_sessions.for_member(self.crm_access(member))),
            crm_time_zone=lambda member: current_user_time_zone(self.crm_sessions.for_member(self.crm_access(member))),
            subscriptions=lambda member: SubscriptionClient(self.mailbox(member)),
            crm_token=lambda member: self.crm_sessions.tokens.get(self.crm_access(member)),
            mailbox=self.mailbox, app_token=lambda tenant_id: self.entra.app_token(tenant_id),
            encrypt=lambda secret: self.cipher.encrypt(secret), public_base_url=self.settings.public_base_url,
            initial_page_size=self.settings.initial_page_size, held_notifications=self.held_notifications_queue,
            holder_filters=self.table("crmchannels", HolderFilterRow),
            expect_graph_requests=lambda member, requests: self.mailbox_limits.gate(
                f"{member.tenant_id}/{member.object_id}").expect(requests),
            graph_room_wait=lambda member, requests: self.mailbox_limits.gate(
                f"{member.tenant_id}/{member.object_id}").room_wait(requests),
            mailbox_done=lambda member: self.mailbox_limits.give_back_if_idle(f"{member.tenant_id}/{member.object_id}"),
        ))

    def mailbox(self, member: MemberIdentity) -> GraphMailbox:
        """A member's mailbox, reached with the app's token for their tenant."""
        s = self.settings
        return GraphMailbox(
            s.graph_base_url, member.object_id, lambda: self.entra.app_token(member.tenant_id), self.http,
            tenant_id=member.tenant_id, pacing=Pacing(timeout_seconds=s.outbound_timeout_seconds),
            gate=self.mailbox_limits.gate(f"{member.tenant_id}/{member.object_id}"),
        )

    @cached_property
    def mailbox_limits(self) -> SharedMailboxes:
        """Graph's per-mailbox limits (4 in flight, 10,000 requests per 10 minutes), kept by every
        instance together: each process claims a share of a mailbox in ``graphmailboxes``."""
        return SharedMailboxes(self.table("graphmailboxes", MailboxLimitsRow), holder=self.instance_name)

    @cached_property
    def cipher(self) -> TokenCipher:
        return TokenCipher(_required(self.settings.token_encryption_key, "TOKEN_ENCRYPTION_KEY"))

    @cached_property
    def entra(self) -> EntraApp:
        s = self.settings
        return EntraApp(
            s.entra_authority_host,
            _required(s.entra_client_id, "ENTRA_CLIENT_ID"),
            _required(s.entra_client_secret, "ENTRA_CLIENT_SECRET"),
            self.http,
        )

    @cached_property
    def id_tokens(self) -> IdTokenVerifier:
        return IdTokenVerifier(self.settings.entra_authority_host, self.entra.client_id, self.http)

    def graph(self, tenant_id: str) -> GraphClient:
        """Simple calls with the app's token for a tenant; an Outlook call (sendMail) counts
        against that mailbox's limits with the sync's."""
        return GraphClient(self.settings.graph_base_url, lambda: self.entra.app_token(tenant_id), self.http,
                           tenant_id=tenant_id, gates=self.mailbox_limits.gate,
                           pacing=Pacing(timeout_seconds=self.settings.outbound_timeout_seconds))

    @cached_property
    def crm_directory(self) -> CrmDirectory:
        s = self.settings
        return CrmDirectory(
            s.crm_provisioning_url,
            _required(s.crm_client_id, "CRM_CLIENT_ID"),
            _required(s.crm_client_secret, "CRM_CLIENT_SECRET"),
            self.http,
        )

    @cached_property
    def crm_sessions(self) -> CrmSessions:
        """One token cache and one set of per-org call slots for the whole process."""
        policy = CrmCallPolicy(timeout_seconds=self.settings.outbound_timeout_seconds)
        # One access token per member for every instance (Zoho's refresh limits are per refresh token).
        store = SharedTokenStore(self.table("crmtokens", StoredAccessToken), self.cipher, holder=self.instance_name)
        # The edition's concurrent calls per org, kept by every instance together.
        slots = SharedSlots(self.table("crmslots", SlotRow), holder=self.instance_name)
        return CrmSessions(AccessTokens(self.crm_oauth, store=store), self.http, policy=policy, shared_slots=slots)

    @cached_property
    def instance_name(self) -> str:
        """This process among the app's instances (leases in shared tables name their holder)."""
        return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @cached_property
    def member_permissions(self) -> MemberPermissions:
        return MemberPermissions(self.crm_sessions.for_member)

    def adopt_crm_token(self, member: MemberIdentity, access_token: str, api_domain: str, expires_in: int) -> None:
        """The access token that came with this member's CRM authorisation, as their first one
        (``shared.accounts.token_adoption``)."""
        self.crm_sessions.tokens.adopt(self.crm_access(member), AccessToken(access_token, api_domain, time.time() + expires_in))

    def crm_access(self, member: MemberIdentity) -> CrmMemberAccess:
        """Acting in the CRM as this member, with their (decrypted) refresh token."""
        if not member.refresh_token_encrypted:
            raise SettingsError(f"member {member.email} has no CRM authorisation stored")
        return CrmMemberAccess(
            org_id=member.org_id,
            user_id=member.user_id,
            accounts_server=member.accounts_server,
            api_domain=member.api_domain,
            refresh_token=SecretStr(self.cipher.decrypt(member.refresh_token_encrypted)),
        )

    @cached_property
    def crm_oauth(self) -> ZohoOAuth:
        s = self.settings
        return ZohoOAuth(
            s.crm_accounts_url,
            _required(s.crm_client_id, "CRM_CLIENT_ID"),
            _required(s.crm_client_secret, "CRM_CLIENT_SECRET"),
            self.http,
            allowed_accounts_servers=s.allowed_crm_accounts_servers,
            allowed_api_domains=s.allowed_crm_api_domains,
        )


_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    """The process-wide services, rebuilt when the settings object changes (tests)."""
    global _services
    settings = get_settings()
    with _services_lock:
        if _services is None or _services.settings is not settings:
            _services = Services(settings)
        return _services
