"""The store's departments and the words its catalog is written in.

Titles, brands, tags and descriptions are drawn from these lists, so that content-based models
and search see text that clusters by department the way a real catalog does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["ADJECTIVES", "BRAND_NAMES", "CATEGORY_SPECS", "CLAIMS", "GENERAL_TAGS", "CategorySpec"]


@dataclass(frozen=True)
class CategorySpec:
    """One department of the store: its name, price level, demand and vocabulary."""

    name: str
    median_price: float
    #: Relative share of demand.
    weight: float
    #: Bought again and again; members' favourite (repeat-purchase) items come from here.
    consumable: bool
    nouns: tuple[str, ...]
    tags: tuple[str, ...]


# The first entries are the most common departments, so a small ``categories`` still gets a
# realistic mix (and always at least one consumable department).
CATEGORY_SPECS: Final[tuple[CategorySpec, ...]] = (
    CategorySpec("Pantry & Grocery", 6, 10, True,
                  ("Pasta", "Olive Oil", "Granola", "Basmati Rice", "Honey", "Peanut Butter"),
                  ("organic", "gluten-free", "vegan", "family-size", "pantry-staple")),
    CategorySpec("Personal Care", 9, 6, True,
                  ("Shampoo", "Body Wash", "Toothpaste", "Deodorant", "Face Cream", "Razor"),
                  ("sensitive-skin", "fragrance-free", "travel-size", "dermatologist-tested")),
    CategorySpec("Electronics", 120, 3, False,
                  ("Headphones", "Bluetooth Speaker", "Smartwatch", "Power Bank", "Webcam"),
                  ("wireless", "noise-cancelling", "fast-charging", "bluetooth")),
    CategorySpec("Coffee & Tea", 12, 6, True,
                  ("Espresso Beans", "Green Tea", "Cold Brew", "Chai", "Ground Coffee"),
                  ("fair-trade", "decaf", "single-origin", "organic", "dark-roast")),
    CategorySpec("Women's Clothing", 35, 4, False,
                  ("Blouse", "Wrap Dress", "Cardigan", "Leggings", "Midi Skirt"),
                  ("cotton", "slim-fit", "machine-washable", "sustainable")),
    CategorySpec("Household Cleaning", 7, 5, True,
                  ("Dish Soap", "Laundry Detergent", "Surface Spray", "Sponges", "Trash Bags"),
                  ("refill", "plant-based", "concentrated", "bulk")),
    CategorySpec("Home & Kitchen", 28, 4, False,
                  ("Chef's Knife", "Frying Pan", "Blender", "Cutting Board", "Storage Jars"),
                  ("dishwasher-safe", "non-stick", "stainless-steel", "bpa-free")),
    CategorySpec("Snacks & Sweets", 4, 7, True,
                  ("Chocolate Bar", "Trail Mix", "Potato Chips", "Cookies", "Protein Bar"),
                  ("low-sugar", "vegan", "sharing-size", "gluten-free")),
    CategorySpec("Men's Clothing", 35, 3, False,
                  ("Oxford Shirt", "Chinos", "Hoodie", "Polo", "Field Jacket"),
                  ("cotton", "regular-fit", "stretch", "sustainable")),
    CategorySpec("Pet Supplies", 14, 4, True,
                  ("Dog Food", "Cat Litter", "Chew Toy", "Pet Shampoo", "Bird Seed"),
                  ("grain-free", "for-dogs", "for-cats", "vet-approved")),
    CategorySpec("Beverages", 3, 6, True,
                  ("Sparkling Water", "Lemonade", "Kombucha", "Energy Drink", "Orange Juice"),
                  ("sugar-free", "multipack", "organic", "caffeinated")),
    CategorySpec("Beauty & Cosmetics", 18, 4, False,
                  ("Lipstick", "Mascara", "Serum", "Foundation", "Nail Polish"),
                  ("cruelty-free", "long-lasting", "vegan", "hypoallergenic")),
    CategorySpec("Sports & Fitness", 30, 3, False,
                  ("Yoga Mat", "Dumbbell", "Water Bottle", "Resistance Band", "Jump Rope"),
                  ("home-gym", "lightweight", "non-slip", "durable")),
    CategorySpec("Dairy & Eggs", 4, 5, True,
                  ("Greek Yogurt", "Cheddar", "Butter", "Oat Milk", "Free-Range Eggs"),
                  ("organic", "lactose-free", "local", "high-protein")),
    CategorySpec("Toys & Games", 22, 3, False,
                  ("Building Set", "Board Game", "Jigsaw Puzzle", "Plush Toy", "Action Figure"),
                  ("ages-3-plus", "educational", "family", "stem")),
    CategorySpec("Baby & Kids", 15, 3, True,
                  ("Diapers", "Baby Wipes", "Sippy Cup", "Onesie", "Teether"),
                  ("hypoallergenic", "newborn", "bpa-free", "soft")),
    CategorySpec("Books", 15, 3, False,
                  ("Novel", "Cookbook", "Travel Guide", "Biography", "Journal"),
                  ("hardcover", "paperback", "bestselling-author", "illustrated")),
    CategorySpec("Health & Wellness", 16, 3, True,
                  ("Multivitamin", "Fish Oil", "Protein Powder", "Pain Relief", "Probiotic"),
                  ("vegan", "sugar-free", "30-day-supply", "clinically-tested")),
    CategorySpec("Mobile Accessories", 20, 3, False,
                  ("Phone Case", "Charging Cable", "Screen Protector", "Wireless Charger"),
                  ("usb-c", "shockproof", "magnetic", "fast-charging")),
    CategorySpec("Bedding & Bath", 35, 2, False,
                  ("Duvet", "Pillow", "Bath Towel", "Sheet Set", "Bath Mat"),
                  ("cotton", "hypoallergenic", "king-size", "machine-washable")),
    CategorySpec("Computers & Accessories", 60, 2, False,
                  ("Keyboard", "Mouse", "USB Hub", "Laptop Stand", "Monitor"),
                  ("wireless", "ergonomic", "usb-c", "mechanical")),
    CategorySpec("Shoes", 60, 2, False,
                  ("Sneakers", "Chelsea Boots", "Sandals", "Loafers", "Running Shoes"),
                  ("leather", "waterproof", "wide-fit", "cushioned")),
    CategorySpec("Home Decor", 25, 2, False,
                  ("Scented Candle", "Vase", "Picture Frame", "Throw Blanket", "Wall Clock"),
                  ("handmade", "minimalist", "gift-ready", "boho")),
    CategorySpec("Office & Stationery", 8, 2, True,
                  ("Gel Pens", "Sticky Notes", "Binder", "Planner", "Printer Paper"),
                  ("recycled", "bulk", "acid-free", "refillable")),
    CategorySpec("Garden & Outdoor", 30, 2, False,
                  ("Planter", "Garden Hose", "Pruning Shears", "Seed Kit", "Patio Lantern"),
                  ("weatherproof", "solar", "organic", "frost-resistant")),
    CategorySpec("Tools & Hardware", 35, 2, False,
                  ("Cordless Drill", "Screwdriver Set", "Tape Measure", "Toolbox", "Work Gloves"),
                  ("cordless", "heavy-duty", "professional", "lifetime-warranty")),
    CategorySpec("Video Games", 45, 2, False,
                  ("Controller", "Gaming Headset", "Game Card", "Console Stand"),
                  ("multiplayer", "wireless", "rgb", "family")),
    CategorySpec("Outdoor Recreation", 55, 1, False,
                  ("Tent", "Sleeping Bag", "Hiking Backpack", "Headlamp", "Camping Stove"),
                  ("waterproof", "ultralight", "4-season", "packable")),
    CategorySpec("Jewelry & Watches", 70, 1, False,
                  ("Necklace", "Watch", "Earrings", "Bracelet", "Ring"),
                  ("sterling-silver", "gold-plated", "gift-ready", "handmade")),
    CategorySpec("Automotive", 25, 1, True,
                  ("Motor Oil", "Wiper Blades", "Car Wax", "Floor Mats", "Air Freshener"),
                  ("all-season", "universal-fit", "synthetic", "long-life")),
    CategorySpec("Furniture", 180, 1, False,
                  ("Armchair", "Bookshelf", "Coffee Table", "Desk", "Bar Stool"),
                  ("solid-wood", "easy-assembly", "space-saving", "mid-century")),
    CategorySpec("Arts & Crafts", 12, 1, False,
                  ("Watercolor Set", "Yarn", "Sketchbook", "Glue Gun", "Craft Paper"),
                  ("non-toxic", "beginner", "professional", "kids")),
    CategorySpec("Party & Seasonal", 10, 1, False,
                  ("Balloons", "Gift Wrap", "String Lights", "Party Plates"),
                  ("holiday", "birthday", "reusable", "biodegradable")),
    CategorySpec("Luggage & Travel", 90, 1, False,
                  ("Carry-On", "Duffel Bag", "Packing Cubes", "Travel Pillow"),
                  ("lightweight", "tsa-approved", "expandable", "hard-shell")),
    CategorySpec("Music & Instruments", 80, 1, False,
                  ("Guitar Strings", "Ukulele", "Digital Tuner", "Drumsticks", "Capo"),
                  ("beginner", "professional", "acoustic", "electric")),
)  # fmt: skip

ADJECTIVES: Final[tuple[str, ...]] = (
    "Classic", "Premium", "Everyday", "Organic", "Compact", "Deluxe", "Essential", "Ultra",
    "Natural", "Smart", "Fresh", "Pro", "Eco", "Vintage", "Modern", "Lightweight", "Signature",
    "Artisan", "Original", "Supreme", "Gentle", "Bold", "Cozy", "Urban", "Pure", "Rapid",
    "Golden", "Nordic", "Heritage", "Active",
)  # fmt: skip
_BRAND_STEMS: Final[tuple[str, ...]] = (
    "Ace", "Bel", "Cor", "Dal", "Elm", "Fen", "Gal", "Hal", "Ivo", "Jun", "Kel", "Lum", "Mar",
    "Nor", "Oak", "Pin", "Quin", "Ros", "Sol", "Tal", "Ul", "Ver", "Wil", "Xan", "Yar", "Zen",
)  # fmt: skip
_BRAND_ENDINGS: Final[tuple[str, ...]] = (
    "a", "ex", "ia", "ion", "ora", "ster", "wood", "field", "ly", "co", "mark", "ridge", "bay",
    "haven", "line", "works",
)  # fmt: skip
BRAND_NAMES: Final[tuple[str, ...]] = tuple(s + e for s in _BRAND_STEMS for e in _BRAND_ENDINGS)
GENERAL_TAGS: Final[tuple[str, ...]] = (
    "eco-friendly", "limited-edition", "value-pack", "gift-idea", "online-exclusive",
)  # fmt: skip
CLAIMS: Final[tuple[str, ...]] = (
    "A member favourite.",
    "Built to last.",
    "Great value for everyday use.",
    "Thoughtfully designed and easy to love.",
    "Quality you can count on.",
    "Rated highly by our members.",
)
