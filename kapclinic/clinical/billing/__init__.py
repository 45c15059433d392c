"""Billing arithmetic (pure; no Django): codes as versioned data, money, ledger, units, ageing.

Facts and their sources: docs/billing.md. Money rules there in section 4 are ours.
"""
