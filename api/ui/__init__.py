"""The raters' workbench under ``/ui/``: server-rendered pages, one small script, no external assets."""
