"""The long-lived named actors of lakeray (package ``lakeray.actors``)."""
