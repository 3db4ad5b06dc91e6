"""Archives of acquisitions: the STAC catalog index and writer (:mod:`.catalog`), ingest of real imagery
(:mod:`.ingest`) and the demo archive generator (:mod:`.synthetic`)."""
