"""Campaign exports that can be measured: a campaign id, a stable holdout group, suppression
lists, frequency caps, a reasons file, a manifest and the ledger of what was sent
(docs/campaigns.md)."""

from training.campaigns.export import (
    CampaignPlan,
    CampaignSummary,
    excluded_path,
    export_campaign,
    manifest_path,
)
from training.campaigns.ledger import GROUPS, CampaignLedger, CampaignSend
from training.campaigns.rules import REASONS, CampaignOutcomes, FrequencyCaps

__all__ = [
    "GROUPS",
    "REASONS",
    "CampaignLedger",
    "CampaignOutcomes",
    "CampaignPlan",
    "CampaignSend",
    "CampaignSummary",
    "FrequencyCaps",
    "excluded_path",
    "export_campaign",
    "manifest_path",
]
