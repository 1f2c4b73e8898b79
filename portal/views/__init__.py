"""Views of the core, one module per area. Every view authorizes through portal.access."""
