"""The demo brand: Fjellstad Outdoor, three stores and an outdoor-clothing catalogue."""

from __future__ import annotations

STORES = [
    {
        "id": "oslo-1",
        "name": "Fjellstad Oslo Karl Johan",
        "address": "Karl Johans gate 12, 0154 Oslo",
        "timezone": "Europe/Oslo",
    },
    {
        "id": "bergen-1",
        "name": "Fjellstad Bergen Torgallmenningen",
        "address": "Torgallmenningen 8, 5014 Bergen",
        "timezone": "Europe/Oslo",
    },
    {
        "id": "trondheim-1",
        "name": "Fjellstad Trondheim Nordre",
        "address": "Nordre gate 20, 7011 Trondheim",
        "timezone": "Europe/Oslo",
    },
]
HOURS = {d: [["10:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": [["10:00", "18:00"]]
}

# (id, name, category, price)
PRODUCTS = [
    ("ALP-JKT", "Alpine Shell Jacket", "jackets", "349.00"),
    ("FJD-DWN", "Fjord Down Jacket", "jackets", "289.00"),
    ("TRL-RAIN", "Trail Rain Jacket", "jackets", "159.00"),
    ("NRD-FLC", "Nordic Fleece", "midlayers", "89.00"),
    ("MRN-BASE", "Merino Base Layer", "midlayers", "69.00"),
    ("SUM-TEE", "Summit Tech Tee", "midlayers", "39.00"),
    ("TRK-PANT", "Trekking Pants", "pants", "119.00"),
    ("SKI-PANT", "Ski Shell Pants", "pants", "229.00"),
    ("HKR-BOOT", "Hiker Mid GTX Boots", "footwear", "199.00"),
    ("TRL-RUN", "Trail Running Shoes", "footwear", "149.00"),
    ("WNT-BOOT", "Winter Boots", "footwear", "179.00"),
    ("DAY-PACK", "Daypack 28L", "packs", "99.00"),
    ("EXP-PACK", "Expedition Pack 65L", "packs", "259.00"),
    ("WOOL-HAT", "Wool Beanie", "accessories", "29.00"),
    ("GLV-PRO", "Pro Gloves", "accessories", "49.00"),
    ("SOCK-3", "Hiking Socks 3-pack", "accessories", "25.00"),
    ("HEAD-LMP", "Headlamp 400", "gear", "45.00"),
    ("BTL-STL", "Steel Bottle 1L", "gear", "35.00"),
    ("TENT-2", "Two-person Tent", "gear", "399.00"),
    ("SLP-BAG", "Sleeping Bag -5°", "gear", "219.00"),
]

FIRST_NAMES = (
    "Ana Ingrid Sofie Emma Nora Maja Leah Ella Olivia Sara Ida Frida Thea Mia Hanna "
    "Jakob Emil Noah Oliver Filip Lucas Henrik Aksel Magnus Elias Isak Tobias Jonas Liam Mats"
).split()
LAST_NAMES = (
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen "
    "Johnsen Pettersen Eriksen Berg Haugen Hagen Bakken Dahl Lie Moen Berge Strand Solberg"
).split()
CITIES = ("Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Drammen")
