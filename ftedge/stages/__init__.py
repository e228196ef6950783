"""The commands: each stage orchestrates libraries, prints, and talks to the next stage only
through what is on disk (docs/ARCHITECTURE.md)."""
