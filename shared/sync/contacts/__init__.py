"""The pure contacts field mapping: catalogues, mapping, validation, conversion, preview and
scope (SPEC R4.2, R4.4 to R4.7; issue 8). No I/O: adapters read and write, this decides.

Modules, one concern each: ``catalogue`` (which fields each side offers, with types), ``crm_metadata`` (the CRM
catalogue from the CRM's field metadata),
``mapping`` (the member's pairs, the default, ``changed_pairs``), ``validation`` (why a
mapping or a value is refused), ``convert`` (record / contact ⇄ canonical fields),
``normalisation`` (``CONTACTS_NORMALISATION``), ``preview`` and ``scope``.

The default mapping (``DEFAULT_CONTACT_MAPPING``), CRM field ⇄ Outlook field:

==================  ==================  ===============  ==================================
CRM (Contacts)      Outlook (Graph)     direction        why
==================  ==================  ===============  ==================================
First_Name          givenName           both
Last_Name           surname             both             required by the CRM
Salutation          title               crm_to_outlook   a CRM picklist; Outlook's is free text
Email               emailAddresses[0]   both
Secondary_Email     emailAddresses[1]   both
Phone               businessPhones[0]   both
Other_Phone         businessPhones[1]   both             Outlook has no "other phone"
Mobile              mobilePhone         both
Home_Phone          homePhones[0]       both
Title               jobTitle            both             CRM Title is the job title
Department          department          both
Account_Name        companyName         both             lookup written by name ([U] in Zoho)
Assistant           assistantName       both
Reporting_To        manager             crm_to_outlook   a lookup a name cannot set
Mailing_Address     businessAddress     both             Mailing_Street/City/State/Zip/Country
Other_Address       otherAddress        both             Other_Street/City/State/Zip/Country
Date_of_Birth       birthday            both             a date; Graph's instant read as its date
Description         personalNotes       both
Skype_ID            imAddresses[0]      both
==================  ==================  ===============  ==================================

Not mapped by default: ``Fax`` and ``Asst_Phone`` (Graph v1.0 has no such contact
property), ``Twitter``, ``Tag`` (read-only here; can go to ``categories`` CRM to Outlook),
``Full_Name`` (read-only, derived). Outlook fields left unmapped: middleName, nickName,
generation, initials, displayName (Graph derives it from the name parts), fileAs, the
yomi names, officeLocation, profession, spouseName, businessHomePage, emailAddresses[2],
homePhones[1], homeAddress, categories, children.

The runner's cycle for contacts::

    excluded = crm_contact_excluded(record, member_user_id=member.crm_user_id)
    seen = ItemSeen(..., fields=crm_contact_to_fields(record, mapping), excluded=excluded)
    ...  graph_contact_to_fields(contact, mapping) for the Outlook side
    result = plan(links, crm, outlook, now=..., normalisation=CONTACTS_NORMALISATION)
    # an Update's FieldPatch -> fields_to_crm_contact(patch.fields, mapping)
    #                        -> fields_to_graph_contact(patch.fields, mapping, current=contact)
    #                           (or merged=update.link.fields when the contact is not at hand)
    # write_problems(patch.fields, mapping, side) before writing: refuse, record, show
"""

from shared.sync.contacts.catalogue import (
    ADDRESS_PARTS,
    CRM_CONTACT_FIELDS,
    GRAPH_CONTACT_FIELDS,
    GRAPH_FIELDS_LEFT_OUT,
    CrmCatalogue,
    CrmField,
    CrmShape,
    FieldType,
    GraphField,
    compatible,
)
from shared.sync.contacts.convert import (
    crm_contact_to_fields,
    fields_to_crm_contact,
    fields_to_graph_contact,
    graph_contact_to_fields,
)
from shared.sync.contacts.crm_metadata import crm_catalogue_from_metadata
from shared.sync.contacts.mapping import (
    DEFAULT_CONTACT_MAPPING,
    ContactMapping,
    Direction,
    FieldPair,
    changed_pairs,
)
from shared.sync.contacts.normalisation import CONTACTS_NORMALISATION
from shared.sync.contacts.preview import PreviewRow, preview
from shared.sync.contacts.scope import (
    IMPORTED,
    INITIAL_SYNC_CAP,
    MIGRATED,
    NOT_OWNER,
    crm_contact_excluded,
    initial_sync_room,
    within_initial_cap,
)
from shared.sync.contacts.validation import (
    MappingProblem,
    ProblemCode,
    validate_mapping,
    value_problems,
    write_problems,
)

__all__ = [
    "ADDRESS_PARTS",
    "CONTACTS_NORMALISATION",
    "CRM_CONTACT_FIELDS",
    "DEFAULT_CONTACT_MAPPING",
    "GRAPH_CONTACT_FIELDS",
    "GRAPH_FIELDS_LEFT_OUT",
    "IMPORTED",
    "INITIAL_SYNC_CAP",
    "MIGRATED",
    "NOT_OWNER",
    "ContactMapping",
    "CrmCatalogue",
    "CrmField",
    "CrmShape",
    "Direction",
    "FieldPair",
    "FieldType",
    "GraphField",
    "MappingProblem",
    "PreviewRow",
    "ProblemCode",
    "changed_pairs",
    "compatible",
    "crm_catalogue_from_metadata",
    "crm_contact_excluded",
    "crm_contact_to_fields",
    "fields_to_crm_contact",
    "fields_to_graph_contact",
    "graph_contact_to_fields",
    "initial_sync_room",
    "preview",
    "validate_mapping",
    "value_problems",
    "within_initial_cap",
    "write_problems",
]
