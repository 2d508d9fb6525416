"""Outbound campaigns: definitions, audience, compliance, pacing and RQ jobs.

Public API (see docs/campaigns.md):

* definitions — :func:`parse_definition`, :func:`load_definition`, :class:`CampaignDefinition`,
  :class:`DefinitionError`;
* contact policy — :func:`check_contact`, :class:`ContactPolicy`, :class:`ContactFacts`,
  :class:`Allowed`, :class:`Skip`, :class:`SkipReason`, :func:`parse_sms_keyword`;
* operations — :mod:`campaigns.service` (create, preview, launch, pause, resume, cancel,
  status) and :func:`campaigns.report.build_report`;
* webhook entry points — :func:`handle_call_status`, :func:`handle_amd_status`,
  :func:`handle_sms_status`, :func:`handle_inbound_sms` (``campaigns.jobs``);
* the REST blueprint — ``campaigns.api.bp``.
"""

from campaigns.compliance import (
    Allowed,
    Channel,
    ContactFacts,
    ContactPolicy,
    Skip,
    SkipReason,
    check_contact,
)
from campaigns.definition import (
    CampaignDefinition,
    DefinitionError,
    load_definition,
    parse_definition,
)
from campaigns.jobs import (
    handle_amd_status,
    handle_call_status,
    handle_inbound_sms,
    handle_sms_status,
)
from campaigns.keywords import KeywordAction, parse_sms_keyword

__all__ = [
    "Allowed",
    "CampaignDefinition",
    "Channel",
    "ContactFacts",
    "ContactPolicy",
    "DefinitionError",
    "KeywordAction",
    "Skip",
    "SkipReason",
    "check_contact",
    "handle_amd_status",
    "handle_call_status",
    "handle_inbound_sms",
    "handle_sms_status",
    "load_definition",
    "parse_definition",
    "parse_sms_keyword",
]
