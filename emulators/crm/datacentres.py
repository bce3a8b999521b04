"""Zoho data centres and how the emulator maps their host names onto path prefixes.

The real service separates data centres by host name (accounts.zoho.com, www.zohoapis.eu ...).
We run one server on loopback, so each data centre gets a path prefix instead:
``{base}/{dc}/accounts`` stands for the accounts server and ``{base}/{dc}/api`` for the API domain.
"""

from __future__ import annotations

# dc -> (real accounts server, real API domain, real CRM web host, org time zone, UTC offset)
DATA_CENTRES: dict[str, tuple[str, str, str, str, str]] = {
    "us": ("https://accounts.zoho.com", "https://www.zohoapis.com", "https://crm.zoho.com", "America/New_York", "-05:00"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu", "https://crm.zoho.eu", "Europe/Paris", "+01:00"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in", "https://crm.zoho.in", "Asia/Kolkata", "+05:30"),
    "au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au", "https://crm.zoho.com.au", "Australia/Sydney", "+10:00"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp", "https://crm.zoho.jp", "Asia/Tokyo", "+09:00"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca", "https://crm.zohocloud.ca", "America/Toronto", "-05:00"),
}


def is_known(dc: str) -> bool:
    return dc in DATA_CENTRES


def utc_offset(dc: str) -> str:
    return DATA_CENTRES[dc][4]


def time_zone(dc: str) -> str:
    return DATA_CENTRES[dc][3]


def accounts_url(base_url: str, dc: str) -> str:
    return f"{base_url}/{dc}/accounts"


def api_url(base_url: str, dc: str) -> str:
    return f"{base_url}/{dc}/api"


def crm_url(base_url: str, dc: str) -> str:
    return f"{base_url}/{dc}/crm"
