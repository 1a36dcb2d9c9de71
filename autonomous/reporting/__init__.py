"""``atlas-autonomous report``: a Markdown and HTML report of a live run (see ``collect``)."""
