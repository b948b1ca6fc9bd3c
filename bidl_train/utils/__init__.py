"""Small helpers with no dependency on the rest of the package, usable from
every layer (data code included)."""
