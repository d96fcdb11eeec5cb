"""What the business edits: the catalog (`offers.yaml`), alert rules and contact policy.

This folder is data; it is a package only so the default location can be found once installed.
"""
