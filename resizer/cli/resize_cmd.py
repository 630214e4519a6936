"""down and up: filled in by the lead."""
