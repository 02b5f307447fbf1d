"""The web pages people open in a browser: the viewer and the studio, as plain files."""
