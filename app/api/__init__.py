"""The JSON API: the same services and visibility rules as the pages."""
